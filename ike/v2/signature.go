package v2

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
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
