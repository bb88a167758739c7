package ike

import (
	"crypto/mlkem"
	"errors"
	"fmt"
	"io"
)

// Key exchange methods that are not Diffie-Hellman groups: ML-KEM (NIST
// FIPS 203) as draft-ietf-ipsecme-ikev2-mlkem puts it in IKEv2's "Transform
// Type 4 - Key Exchange Method Transform IDs" registry, which the
// Additional Key Exchange transform types of RFC 9370 §2.2.1 share: 35
// ml-kem-512, 36 ml-kem-768, 37 ml-kem-1024. ISM has ML-KEM-768 (Go's
// crypto/mlkem), as an additional key exchange only: the draft's §2.1 says
// ML-KEM-768 "SHOULD NOT" go in IKE_SA_INIT, whose messages cannot be
// fragmented, so LookupGroup (the IKE_SA_INIT, PFS and IKEv1 groups)
// does not return it; LookupMethod does.
//
// With a KEM the initiator's KE payload carries the encapsulation key and
// the responder's the ciphertext (draft §2.1: 1184 and 1088 octets for
// ML-KEM-768); the 32-octet shared secret is used as g^ir is.

// MLKEM768 is the IANA number of ML-KEM-768 as a key exchange method.
const MLKEM768 = 36

var kems = map[int]*Group{
	MLKEM768: {ID: MLKEM768, Name: "mlkem768", Strength: 192, kem: true,
		size: mlkem.EncapsulationKeySize768, ctSize: mlkem.CiphertextSize768},
}

// LookupMethod returns the key exchange method with IKE number id: a
// Diffie-Hellman group or a KEM. Every method is allowed as an RFC 9370
// additional key exchange.
func LookupMethod(id int) (*Group, bool) {
	if g, ok := groups[id]; ok {
		return g, true
	}
	g, ok := kems[id]
	return g, ok
}

// KEM reports whether the method is a key encapsulation mechanism, whose
// two KE payloads differ (an encapsulation key, then a ciphertext).
func (g *Group) KEM() bool { return g.kem }

// ResponseSize is the length of the responder's KE data: the public value
// for a Diffie-Hellman group, the ciphertext for a KEM.
func (g *Group) ResponseSize() int {
	if g.kem {
		return g.ctSize
	}
	return g.size
}

// Respond is the responder's half of a key exchange with the initiator's
// KE data peer: a fresh key and the shared secret for a Diffie-Hellman
// group, an encapsulation for a KEM. It returns the responder's KE data
// and the shared secret. A peer value of the wrong size or that fails its
// checks (FIPS 203 §7.2 for an ML-KEM encapsulation key) is an error
// wrapping the one Shared returns.
func (g *Group) Respond(rand io.Reader, peer []byte) (public, shared []byte, err error) {
	if !g.kem {
		k, err := g.GenerateKey(rand)
		if err != nil {
			return nil, nil, err
		}
		defer k.Zero()
		s, err := k.Shared(peer)
		if err != nil {
			return nil, nil, err
		}
		return k.Public, s, nil
	}
	if len(peer) != g.size {
		return nil, nil, fmt.Errorf("%w: %d bytes for %v", errBadPublic, len(peer), g)
	}
	ek, err := mlkem.NewEncapsulationKey768(peer)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errBadPublic, err)
	}
	// Encapsulate draws its randomness from crypto/rand, independent of
	// every other random value of the exchange (draft §4).
	s, ct := ek.Encapsulate()
	return ct, s, nil
}

// generateKEM makes an ephemeral ML-KEM-768 decapsulation key from a
// 64-octet seed d|z read from rand (FIPS 203 §7.1, ML-KEM.KeyGen_internal
// with NewDecapsulationKey768).
func (g *Group) generateKEM(rand io.Reader) (*KeyExchange, error) {
	seed := make([]byte, mlkem.SeedSize)
	defer clear(seed)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("ike: %v key: %w", g, err)
	}
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		return nil, fmt.Errorf("ike: %v key: %w", g, err)
	}
	return &KeyExchange{g: g, dk: dk, Public: dk.EncapsulationKey().Bytes()}, nil
}

// decapsulate returns the shared secret of the responder's ciphertext.
func (k *KeyExchange) decapsulate(ct []byte) ([]byte, error) {
	if len(ct) != k.g.ctSize {
		return nil, fmt.Errorf("%w: %d bytes for %v", errBadPublic, len(ct), k.g)
	}
	if k.dk == nil {
		return nil, errZeroed
	}
	// FIPS 203 §7.3: the ciphertext type check is its length; a
	// tampered ciphertext decapsulates (implicit rejection) to a secret
	// the peer does not have, which the next integrity check shows.
	return k.dk.Decapsulate(ct)
}

// validateAdditionalKE checks the additional key exchanges: known
// methods, at most MaxAdditionalKE, no method twice (RFC 9370 §2.2.1:
// the responder's choice "MUST NOT contain duplicated algorithms").
func (p Policy) validateAdditionalKE() error {
	if len(p.AdditionalKE) > MaxAdditionalKE {
		return fmt.Errorf("%d additional key exchanges, at most %d", len(p.AdditionalKE), MaxAdditionalKE)
	}
	seen := map[int]bool{}
	for _, m := range p.AdditionalKE {
		if _, ok := LookupMethod(m); !ok {
			return fmt.Errorf("unsupported additional key exchange method %d", m)
		}
		if seen[m] {
			return fmt.Errorf("additional key exchange method %d twice", m)
		}
		seen[m] = true
	}
	if p.AdditionalKEOptional && len(p.AdditionalKE) == 0 {
		return errors.New("optional additional key exchanges, but none")
	}
	return nil
}
