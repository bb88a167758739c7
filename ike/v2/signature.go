package v2

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Signatures in AUTH payloads. The classic methods of RFC 7296 §3.8 and
// RFC 4754 fix the algorithm: RSA (1) is RSASSA-PKCS1-v1_5 with SHA-1, and
// ECDSA on P-256, P-384 and P-521 (9, 10, 11) signs with SHA-256, SHA-384
// and SHA-512 and sends r and s side by side. Digital Signature (14, RFC
// 7427 §3) names the algorithm in the AUTH data itself:
//
//	| ASN.1 Length (1 octet) | AlgorithmIdentifier (DER) | Signature Value |
//
// with RSASSA-PKCS1-v1_5, RSASSA-PSS (RFC 4055) or ECDSA with a DER
// Ecdsa-Sig-Value (RFC 3279), and a hash among those both ends announced
// in SIGNATURE_HASH_ALGORITHMS (§4). This end announces SHA-256, SHA-384
// and SHA-512 (RFC 8247 §3.2 retires SHA-1 for signatures), uses method 14
// whenever the peer announced a hash it has, and the classic method of its
// key otherwise.

// Hash algorithm identifiers of SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4,
// the IANA "IKEv2 Hash Algorithms" registry).
const (
	hashAlgSHA1   uint16 = 1
	hashAlgSHA256 uint16 = 2
	hashAlgSHA384 uint16 = 3
	hashAlgSHA512 uint16 = 4
)

// ourHashAlgorithms are the hashes this end announces and accepts in
// method 14 signatures.
var ourHashAlgorithms = []uint16{hashAlgSHA256, hashAlgSHA384, hashAlgSHA512}

var hashOfAlg = map[uint16]crypto.Hash{hashAlgSHA1: crypto.SHA1, hashAlgSHA256: crypto.SHA256,
	hashAlgSHA384: crypto.SHA384, hashAlgSHA512: crypto.SHA512}

// hashAlgorithmsNotify is this end's SIGNATURE_HASH_ALGORITHMS.
func hashAlgorithmsNotify() Payload {
	var data []byte
	for _, h := range ourHashAlgorithms {
		data = binary.BigEndian.AppendUint16(data, h)
	}
	return notifyPayload(SignatureHashAlgorithms, data)
}

// peerHashes returns the hashes of the peer's SIGNATURE_HASH_ALGORITHMS
// that this end also has, or nil when it sent none.
func peerHashes(m *Message) []crypto.Hash {
	n, ok := m.Notify(SignatureHashAlgorithms)
	if !ok {
		return nil
	}
	var out []crypto.Hash
	for b := n.Data; len(b) >= 2; b = b[2:] {
		id := binary.BigEndian.Uint16(b)
		for _, ours := range ourHashAlgorithms {
			if id == ours {
				out = append(out, hashOfAlg[id])
			}
		}
	}
	if out == nil {
		out = []crypto.Hash{} // announced, but nothing in common: classic methods
	}
	return out
}

// sigScheme is how an AUTH payload is signed.
type sigScheme struct {
	method AuthMethod
	hash   crypto.Hash
	ecdsa  bool
	pss    bool // RSASSA-PSS, method 14 only
	salt   int  // PSS salt length
}

func (s sigScheme) String() string {
	alg := "rsa"
	switch {
	case s.ecdsa:
		alg = "ecdsa"
	case s.pss:
		alg = "rsa/pss"
	}
	return fmt.Sprintf("%s-%s (AUTH method %d)", alg, hashName(s.hash), s.method)
}

func hashName(h crypto.Hash) string {
	return map[crypto.Hash]string{crypto.SHA1: "sha1", crypto.SHA256: "sha256", crypto.SHA384: "sha384", crypto.SHA512: "sha512"}[h]
}

// Object identifiers (RFC 3279, RFC 4055, RFC 5758).
var (
	oidRSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidHash   = map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.SHA1:   {1, 3, 14, 3, 2, 26},
		crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
		crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2},
		crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
	}
	oidRSAWith = map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.SHA1:   {1, 2, 840, 113549, 1, 1, 5},
		crypto.SHA256: {1, 2, 840, 113549, 1, 1, 11},
		crypto.SHA384: {1, 2, 840, 113549, 1, 1, 12},
		crypto.SHA512: {1, 2, 840, 113549, 1, 1, 13},
	}
	oidECDSAWith = map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.SHA1:   {1, 2, 840, 10045, 4, 1},
		crypto.SHA256: {1, 2, 840, 10045, 4, 3, 2},
		crypto.SHA384: {1, 2, 840, 10045, 4, 3, 3},
		crypto.SHA512: {1, 2, 840, 10045, 4, 3, 4},
	}
)

// algorithmIdentifier returns the DER AlgorithmIdentifier of a method 14
// scheme, as RFC 7427 Appendix A shows them: sha*WithRSAEncryption with
// NULL parameters, ecdsa-with-SHA* without, and RSASSA-PSS with the hash,
// MGF1 with the same hash and the salt length, and the trailer field left
// out at its default, as DER wants (the RFC's errata to A.4.3 say so).
func (s sigScheme) algorithmIdentifier() []byte {
	var b cryptobyte.Builder
	hashAlg := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidHash[s.hash])
			b.AddASN1NULL()
		})
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		switch {
		case s.ecdsa:
			b.AddASN1ObjectIdentifier(oidECDSAWith[s.hash])
		case !s.pss:
			b.AddASN1ObjectIdentifier(oidRSAWith[s.hash])
			b.AddASN1NULL()
		default:
			b.AddASN1ObjectIdentifier(oidRSAPSS)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), hashAlg)
				b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidMGF1)
						hashAlg(b)
					})
				})
				b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1Int64(int64(s.salt))
				})
			})
		}
	})
	return b.BytesOrPanic()
}

var errAlgorithmIdentifier = errors.New("v2: unsupported signature AlgorithmIdentifier")

// parseAlgorithmIdentifier reads the AlgorithmIdentifier of a method 14
// AUTH payload: every form of RFC 7427 Appendix A this end can verify
// (RSASSA-PSS with or without the default trailer field, parameters
// absent or NULL).
func parseAlgorithmIdentifier(der []byte) (sigScheme, error) {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() || !seq.ReadASN1ObjectIdentifier(&oid) {
		return sigScheme{}, errAlgorithmIdentifier
	}
	s := sigScheme{method: AuthDigSig}
	for h, o := range oidRSAWith {
		if o.Equal(oid) {
			s.hash = h
		}
	}
	for h, o := range oidECDSAWith {
		if o.Equal(oid) {
			s.hash, s.ecdsa = h, true
		}
	}
	switch {
	case s.hash != 0:
		if !seq.Empty() && (!seq.SkipASN1(cbasn1.NULL) || !seq.Empty()) {
			return sigScheme{}, errAlgorithmIdentifier
		}
		return s, nil
	case oid.Equal(oidRSAPSS):
		s.pss = true
		if err := s.parsePSSParams(seq); err != nil {
			return sigScheme{}, err
		}
		return s, nil
	}
	return sigScheme{}, fmt.Errorf("%w: %v", errAlgorithmIdentifier, oid)
}

// parsePSSParams reads RSASSA-PSS-params (RFC 4055 §3.1), with the
// defaults of an absent field: SHA-1, MGF1 with SHA-1, a salt of 20, the
// trailer field 1. MGF1 must use the signature's hash.
func (s *sigScheme) parsePSSParams(seq cryptobyte.String) error {
	var params cryptobyte.String
	if !seq.ReadASN1(&params, cbasn1.SEQUENCE) || !seq.Empty() {
		return errAlgorithmIdentifier
	}
	readHash := func(in *cryptobyte.String) (crypto.Hash, bool) {
		var alg cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !in.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
			return 0, false
		}
		if !alg.Empty() && (!alg.SkipASN1(cbasn1.NULL) || !alg.Empty()) {
			return 0, false
		}
		for h, o := range oidHash {
			if o.Equal(oid) {
				return h, true
			}
		}
		return 0, false
	}
	hash, mgfHash, salt, trailer := crypto.SHA1, crypto.SHA1, int64(20), int64(1)
	var f cryptobyte.String
	var present bool
	ok := params.ReadOptionalASN1(&f, &present, cbasn1.Tag(0).Constructed().ContextSpecific())
	if ok && present {
		hash, ok = readHash(&f)
		ok = ok && f.Empty()
	}
	if ok {
		ok = params.ReadOptionalASN1(&f, &present, cbasn1.Tag(1).Constructed().ContextSpecific())
	}
	if ok && present {
		var mgf cryptobyte.String
		var oid asn1.ObjectIdentifier
		ok = f.ReadASN1(&mgf, cbasn1.SEQUENCE) && f.Empty() && mgf.ReadASN1ObjectIdentifier(&oid) && oid.Equal(oidMGF1)
		if ok {
			mgfHash, ok = readHash(&mgf)
			ok = ok && mgf.Empty()
		}
	}
	if ok {
		ok = params.ReadOptionalASN1Integer(&salt, cbasn1.Tag(2).Constructed().ContextSpecific(), int64(20)) &&
			params.ReadOptionalASN1Integer(&trailer, cbasn1.Tag(3).Constructed().ContextSpecific(), int64(1)) &&
			params.Empty()
	}
	if !ok || trailer != 1 || salt < 0 || salt > 1024 || hash != mgfHash {
		return fmt.Errorf("%w: RSASSA-PSS parameters", errAlgorithmIdentifier)
	}
	s.hash, s.salt = hash, int(salt)
	return nil
}

// chooseScheme picks how this end signs with key: method 14 with the
// first hash of prefer the peer announced (peer non-nil), RSASSA-PSS for
// an RSA key if pss is set; otherwise the classic method of the key.
func chooseScheme(key crypto.PublicKey, peer []crypto.Hash, pss bool) (sigScheme, error) {
	prefer := []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}
	var classic sigScheme
	switch k := key.(type) {
	case *rsa.PublicKey:
		classic = sigScheme{method: AuthRSASig, hash: crypto.SHA1}
	case *ecdsa.PublicKey:
		m, h, ok := ecdsaMethod(k.Curve)
		if !ok {
			return sigScheme{}, fmt.Errorf("v2: no signature method for curve %s", k.Curve.Params().Name)
		}
		classic = sigScheme{method: m, hash: h, ecdsa: true}
		prefer = append([]crypto.Hash{h}, prefer...) // the curve's own hash first
	default:
		return sigScheme{}, fmt.Errorf("v2: no signature method for a %T key", key)
	}
	for _, h := range prefer {
		for _, p := range peer {
			if h == p {
				s := sigScheme{method: AuthDigSig, hash: h, ecdsa: classic.ecdsa, pss: pss && !classic.ecdsa}
				if s.pss {
					s.salt = h.Size()
				}
				return s, nil
			}
		}
	}
	return classic, nil
}

// ecdsaMethod returns the RFC 4754 method and hash of a curve.
func ecdsaMethod(c elliptic.Curve) (AuthMethod, crypto.Hash, bool) {
	switch c {
	case elliptic.P256():
		return AuthECDSAP256, crypto.SHA256, true
	case elliptic.P384():
		return AuthECDSAP384, crypto.SHA384, true
	case elliptic.P521():
		return AuthECDSAP521, crypto.SHA512, true
	}
	return 0, 0, false
}

// sign returns the AUTH payload of octets (the §2.15 signed octets) signed
// with key by scheme s.
func (s sigScheme) sign(key crypto.Signer, octets []byte, rand io.Reader) (Auth, error) {
	h := s.hash.New()
	h.Write(octets)
	digest := h.Sum(nil)
	var opts crypto.SignerOpts = s.hash
	if s.pss {
		opts = &rsa.PSSOptions{SaltLength: s.salt, Hash: s.hash}
	}
	sig, err := key.Sign(rand, digest, opts)
	if err != nil {
		return Auth{}, fmt.Errorf("v2: signing: %w", err)
	}
	if s.method == AuthDigSig {
		alg := s.algorithmIdentifier()
		data := append([]byte{byte(len(alg))}, alg...)
		return Auth{Method: AuthDigSig, Data: append(data, sig...)}, nil
	}
	if s.ecdsa { // RFC 4754 §7: r and s, each the curve's size
		if sig, err = ecdsaRaw(sig, key.Public().(*ecdsa.PublicKey).Curve); err != nil {
			return Auth{}, err
		}
	}
	return Auth{Method: s.method, Data: sig}, nil
}

// Errors of signature verification.
var (
	errSignature = errors.New("v2: the signature does not verify")
	errMethod    = errors.New("v2: the AUTH method does not fit the certificate's key")
)

// verifySignature checks a signature AUTH payload over octets with the
// peer's public key and returns its scheme.
func verifySignature(pub crypto.PublicKey, a Auth, octets []byte) (sigScheme, error) {
	var s sigScheme
	sig := a.Data
	switch a.Method {
	case AuthRSASig:
		s = sigScheme{method: AuthRSASig, hash: crypto.SHA1}
	case AuthECDSAP256, AuthECDSAP384, AuthECDSAP521:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return s, errMethod
		}
		m, h, ok := ecdsaMethod(k.Curve)
		if !ok || m != a.Method {
			return s, fmt.Errorf("%w: method %d with a %s key", errMethod, a.Method, k.Curve.Params().Name)
		}
		s = sigScheme{method: m, hash: h, ecdsa: true}
	case AuthDigSig:
		if len(sig) < 1 || len(sig) < 1+int(sig[0]) {
			return s, fmt.Errorf("%w: AUTH data too short", ErrMalformed)
		}
		var err error
		if s, err = parseAlgorithmIdentifier(sig[1 : 1+int(sig[0])]); err != nil {
			return s, err
		}
		sig = sig[1+int(sig[0]):]
		allowed := false
		for _, id := range ourHashAlgorithms {
			allowed = allowed || hashOfAlg[id] == s.hash
		}
		if !allowed {
			return s, fmt.Errorf("%w: %s was not announced", errAlgorithmIdentifier, hashName(s.hash))
		}
	default:
		return s, fmt.Errorf("%w: method %d", errMethod, a.Method)
	}
	h := s.hash.New()
	h.Write(octets)
	digest := h.Sum(nil)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if s.ecdsa {
			return s, fmt.Errorf("%w: ECDSA signature, RSA key", errMethod)
		}
		var err error
		if s.pss {
			err = rsa.VerifyPSS(k, s.hash, digest, sig, &rsa.PSSOptions{SaltLength: s.salt, Hash: s.hash})
		} else {
			err = rsa.VerifyPKCS1v15(k, s.hash, digest, sig)
		}
		if err != nil {
			return s, errSignature
		}
	case *ecdsa.PublicKey:
		if !s.ecdsa {
			return s, fmt.Errorf("%w: RSA signature, ECDSA key", errMethod)
		}
		ok := false
		if s.method == AuthDigSig {
			ok = ecdsa.VerifyASN1(k, digest, sig)
		} else if size := (k.Curve.Params().BitSize + 7) / 8; len(sig) == 2*size {
			r, ss := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
			ok = ecdsa.Verify(k, digest, r, ss)
		}
		if !ok {
			return s, errSignature
		}
	default:
		return s, fmt.Errorf("%w: a %T key", errMethod, pub)
	}
	return s, nil
}

// ecdsaRaw turns a DER Ecdsa-Sig-Value into r | s, each padded to the
// curve's size (RFC 4754 §7).
func ecdsaRaw(der []byte, c elliptic.Curve) ([]byte, error) {
	var r, s *big.Int = new(big.Int), new(big.Int)
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Integer(r) || !seq.ReadASN1Integer(s) || !seq.Empty() {
		return nil, errors.New("v2: ECDSA signature is not DER")
	}
	size := (c.Params().BitSize + 7) / 8
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out, nil
}
