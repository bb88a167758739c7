package v2

import (
	"crypto"
	"crypto/hmac"
	"fmt"
	"hash"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/transform"
)

// Transform IDs of the IANA IKEv2 registries (RFC 7296 §3.3.2, RFC 5282,
// RFC 7634, RFC 4868).
const (
	encrDES              = 2
	encr3DES             = 3
	encrNull             = 11
	encrAESCBC           = 12
	encrAESGCM8          = 18
	encrAESGCM12         = 19
	encrAESGCM16         = 20
	encrChaCha20Poly1305 = 28

	prfHMACMD5    = 1
	prfHMACSHA1   = 2
	prfHMACSHA256 = 5
	prfHMACSHA384 = 6
	prfHMACSHA512 = 7

	integNone          = 0
	integHMACMD596     = 1
	integHMACSHA196    = 2
	integHMACSHA256128 = 12
	integHMACSHA384192 = 13
	integHMACSHA512256 = 14

	esnNo  = 0
	esnYes = 1
)

// prfFunc is a pseudorandom function of §2.13: HMAC with a hash.
type prfFunc struct {
	id   uint16
	hash crypto.Hash
}

func lookupPRF(id uint16) (prfFunc, bool) {
	h := map[uint16]crypto.Hash{prfHMACMD5: crypto.MD5, prfHMACSHA1: crypto.SHA1, prfHMACSHA256: crypto.SHA256,
		prfHMACSHA384: crypto.SHA384, prfHMACSHA512: crypto.SHA512}[id]
	return prfFunc{id: id, hash: h}, h != 0
}

// size is the PRF's output length, which is also the length of SK_d,
// SK_pi and SK_pr (§2.14).
func (p prfFunc) size() int { return p.hash.Size() }

// sum returns prf(key, data...).
func (p prfFunc) sum(key []byte, data ...[]byte) []byte {
	m := hmac.New(p.hash.New, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// integFunc is an integrity algorithm: HMAC truncated to icv bytes.
type integFunc struct {
	id   uint16
	hash crypto.Hash
	icv  int
}

func lookupInteg(id uint16) (integFunc, bool) {
	switch id {
	case integHMACMD596:
		return integFunc{id, crypto.MD5, 12}, true
	case integHMACSHA196:
		return integFunc{id, crypto.SHA1, 12}, true
	case integHMACSHA256128:
		return integFunc{id, crypto.SHA256, 16}, true
	case integHMACSHA384192:
		return integFunc{id, crypto.SHA384, 24}, true
	case integHMACSHA512256:
		return integFunc{id, crypto.SHA512, 32}, true
	}
	return integFunc{}, false
}

// keyLen is the integrity key length: the hash's output (RFC 2104 keys
// of RFC 2404 and RFC 4868 §2.1.1).
func (i integFunc) keyLen() int {
	if i.hash == 0 {
		return 0
	}
	return i.hash.Size()
}

func (i integFunc) new(key []byte) hash.Hash { return hmac.New(i.hash.New, key) }

// encrFunc is an encryption algorithm of the SK payload.
type encrFunc struct {
	id      uint16
	keyBits int
	aeadICV int // 0 for CBC
}

// keyLen is the key length including the salt of AES-GCM (RFC 5282 §7.1:
// "the salt ... are taken from the keying material after the key").
func (e encrFunc) keyLen() int {
	n := e.keyBits / 8
	if e.aeadICV > 0 {
		n += 4
	}
	return n
}

func (e encrFunc) aead() bool { return e.aeadICV > 0 }

// suite is a negotiated IKE SA transform set.
type suite struct {
	encr     encrFunc
	prf      prfFunc
	integ    integFunc // zero with an AEAD cipher
	group    int
	lifetime time.Duration  // the policy's; not negotiated (§2.8)
	auth     ike.AuthMethod // the policy's; not negotiated either (authenticate.go)
	// addke are the additional key exchanges (RFC 9370): as configured,
	// by Additional Key Exchange type, with addkeOptional (NONE proposed
	// too); once negotiated, the methods to perform, in order, NONE left
	// out (addke.go).
	addke         []int
	addkeOptional bool
}

// sameTransforms reports whether two suites propose the same transforms
// of RFC 7296 (the additional key exchanges aside).
func (s suite) sameTransforms(o suite) bool {
	return s.encr == o.encr && s.prf == o.prf && s.integ == o.integ && s.group == o.group
}

func (s suite) String() string {
	return fmt.Sprintf("encr %d/%d prf %d integ %d group %d addke %v", s.encr.id, s.encr.keyBits, s.prf.id, s.integ.id, s.group, s.addke)
}

// policySuite returns the transforms of an IKE policy rule (ike.Policy):
// the cipher, PRF (the hash's HMAC unless PRF is set), integrity (none
// with AES-GCM) and group.
func policySuite(p ike.Policy) (suite, error) {
	var s suite
	switch p.Encryption {
	case ike.Enc3DES:
		s.encr = encrFunc{id: encr3DES, keyBits: 192}
	case ike.EncAES128, ike.EncAES192, ike.EncAES256:
		s.encr = encrFunc{id: encrAESCBC, keyBits: 8 * p.Encryption.KeyLen()}
	case ike.EncAES128GCM:
		s.encr = encrFunc{id: encrAESGCM16, keyBits: 128, aeadICV: 16}
	case ike.EncAES256GCM:
		s.encr = encrFunc{id: encrAESGCM16, keyBits: 256, aeadICV: 16}
	default:
		return s, fmt.Errorf("v2: encryption %v cannot protect an IKEv2 SA", p.Encryption)
	}
	prf := p.PRF
	if prf == 0 {
		prf = p.Hash
	}
	var ok bool
	if s.prf, ok = lookupPRF(hashPRF(prf)); !ok {
		return s, fmt.Errorf("v2: no IKEv2 PRF for %v", prf)
	}
	if !s.encr.aead() {
		if s.integ, ok = lookupInteg(hashInteg(p.Hash)); !ok {
			return s, fmt.Errorf("v2: no IKEv2 integrity algorithm for %v", p.Hash)
		}
	}
	s.group, s.lifetime, s.auth = p.Group, p.Lifetime, p.Auth
	s.addke, s.addkeOptional = append([]int(nil), p.AdditionalKE...), p.AdditionalKEOptional
	if s.lifetime <= 0 {
		s.lifetime = ike.DefaultIKELifetime
	}
	if _, ok := ike.LookupGroup(p.Group); !ok {
		return s, fmt.Errorf("v2: unsupported DH group %d", p.Group)
	}
	return s, nil
}

func hashPRF(h ike.Hash) uint16 {
	return map[ike.Hash]uint16{ike.HashMD5: prfHMACMD5, ike.HashSHA1: prfHMACSHA1, ike.HashSHA256: prfHMACSHA256,
		ike.HashSHA384: prfHMACSHA384, ike.HashSHA512: prfHMACSHA512}[h]
}

func hashInteg(h ike.Hash) uint16 {
	return map[ike.Hash]uint16{ike.HashMD5: integHMACMD596, ike.HashSHA1: integHMACSHA196, ike.HashSHA256: integHMACSHA256128,
		ike.HashSHA384: integHMACSHA384192, ike.HashSHA512: integHMACSHA512256}[h]
}

// prfHash and integHash map IKEv2 IDs back to the policy's words, for
// status.
func prfHash(id uint16) ike.Hash {
	for h := ike.HashMD5; h <= ike.HashSHA512; h++ {
		if hashPRF(h) == id {
			return h
		}
	}
	return 0
}

func integHash(id uint16) ike.Hash {
	for h := ike.HashMD5; h <= ike.HashSHA512; h++ {
		if hashInteg(h) == id {
			return h
		}
	}
	return 0
}

// policy returns the suite as an ike.Policy, for status.
func (s suite) policy() ike.Policy {
	p := ike.Policy{Auth: ike.AuthPSK, Group: s.group, PRF: prfHash(s.prf.id), Hash: integHash(s.integ.id),
		AdditionalKE: append([]int(nil), s.addke...)}
	switch {
	case s.encr.id == encr3DES:
		p.Encryption = ike.Enc3DES
	case s.encr.id == encrAESCBC:
		p.Encryption = map[int]ike.Encryption{128: ike.EncAES128, 192: ike.EncAES192, 256: ike.EncAES256}[s.encr.keyBits]
	case s.encr.aead() && s.encr.keyBits == 128:
		p.Encryption = ike.EncAES128GCM
	case s.encr.aead():
		p.Encryption = ike.EncAES256GCM
	}
	return p
}

// espTransforms returns the transforms of a child SA proposal for an
// entry of the tunnel's transform set (§3.3.2, RFC 4106 §8.4 for the
// AES-GCM key lengths).
func espTransforms(t transform.Transform) []Transform {
	var out []Transform
	switch t.Cipher {
	case transform.CipherNull:
		out = append(out, Transform{Type: TransformENCR, ID: encrNull})
	case transform.CipherDESCBC:
		out = append(out, Transform{Type: TransformENCR, ID: encrDES})
	case transform.Cipher3DESCBC:
		out = append(out, Transform{Type: TransformENCR, ID: encr3DES})
	case transform.CipherAESCBC:
		out = append(out, Transform{Type: TransformENCR, ID: encrAESCBC, KeyLength: uint16(t.KeyBits)})
	case transform.CipherAESGCM:
		id := map[int]uint16{8: encrAESGCM8, 12: encrAESGCM12, 16: encrAESGCM16}[t.AEADICVLen]
		out = append(out, Transform{Type: TransformENCR, ID: id, KeyLength: uint16(t.KeyBits)})
	case transform.CipherChaCha20Poly1305:
		out = append(out, Transform{Type: TransformENCR, ID: encrChaCha20Poly1305})
	}
	if t.Integrity != transform.IntegrityNone {
		out = append(out, Transform{Type: TransformINTEG, ID: integID(t.Integrity)})
	}
	return out
}

func integID(i transform.Integrity) uint16 {
	return map[transform.Integrity]uint16{transform.HMACMD596: integHMACMD596, transform.HMACSHA196: integHMACSHA196,
		transform.HMACSHA256128: integHMACSHA256128, transform.HMACSHA384192: integHMACSHA384192,
		transform.HMACSHA512256: integHMACSHA512256}[i]
}
