package v2

import (
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The ASN.1 AlgorithmIdentifier of an RFC 7427 AUTH payload (§3): which
// signature algorithm and hash, and for RSASSA-PSS its parameters (RFC
// 4055 §3.1). Appendix A of RFC 7427 lists the encodings; the vectors in
// testdata/vectors/rfc7427-appendix-a.txt check them.

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
