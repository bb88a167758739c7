package v2

import (
	"encoding/binary"

	"github.com/ismgw/ism/transform"
)

// The key schedule of RFC 7296 §2.13, §2.14 and §2.17:
//
//	prf+ (K,S) = T1 | T2 | T3 | T4 | ...
//	  T1 = prf (K, S | 0x01)
//	  T2 = prf (K, T1 | S | 0x02)
//	  ...
//	SKEYSEED = prf(Ni | Nr, g^ir)
//	{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
//	                = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr)
//	KEYMAT = prf+(SK_d, Ni | Nr)                 (IKE_AUTH, no PFS)
//	KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr)    (CREATE_CHILD_SA with KE)
//	KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n))
//	                                             (with additional key exchanges, RFC 9370 §2.2.4)

// prfPlus returns n bytes of prf+(key, seed). §2.13: the counter is one
// octet, so at most 255 blocks.
func (p prfFunc) plus(key, seed []byte, n int) []byte {
	out := make([]byte, 0, n+p.size())
	var t []byte
	for i := 1; len(out) < n; i++ {
		if i > 255 {
			panic("v2: prf+ asked for more than 255 blocks")
		}
		t = p.sum(key, t, seed, []byte{byte(i)})
		out = append(out, t...)
	}
	clear(out[n:cap(out)])
	return out[:n]
}

// skeyseed returns prf(Ni | Nr, g^ir) (§2.14). With HMAC any key length
// works; the nonces are the key whole.
func (p prfFunc) skeyseed(ni, nr, gir []byte) []byte {
	return p.sum(append(append([]byte(nil), ni...), nr...), gir)
}

// ikeKeys are the seven keys of an IKE SA (§2.14). They are never
// printed and are zeroed with the SA.
type ikeKeys struct {
	d, ai, ar, ei, er, pi, pr []byte
}

// deriveIKEKeys computes the keys of an IKE SA from SKEYSEED.
func deriveIKEKeys(s suite, skeyseed, ni, nr []byte, spii, spir uint64) ikeKeys {
	ps, is, es := s.prf.size(), 0, s.encr.keyLen()
	if !s.encr.aead() {
		is = s.integ.keyLen()
	}
	seed := append(append([]byte(nil), ni...), nr...)
	seed = binary.BigEndian.AppendUint64(seed, spii)
	seed = binary.BigEndian.AppendUint64(seed, spir)
	km := s.prf.plus(skeyseed, seed, 3*ps+2*is+2*es)
	take := func(n int) []byte {
		k := km[:n:n]
		km = km[n:]
		return k
	}
	return ikeKeys{d: take(ps), ai: take(is), ar: take(is), ei: take(es), er: take(es), pi: take(ps), pr: take(ps)}
}

func (k *ikeKeys) zero() {
	for _, b := range [][]byte{k.d, k.ai, k.ar, k.ei, k.er, k.pi, k.pr} {
		clear(b)
	}
}

// childKeymat returns n bytes of KEYMAT for a child SA (§2.17); gir is
// nil without PFS, extra the secrets of additional key exchanges in
// order (RFC 9370 §2.2.4; nil without).
func childKeymat(p prfFunc, skd, gir, ni, nr, extra []byte, n int) []byte {
	seed := append(append(append(append([]byte(nil), gir...), ni...), nr...), extra...)
	defer clear(seed)
	return p.plus(skd, seed, n)
}

// childKeys are the keys of a new child SA, split from KEYMAT (§2.17).
type childKeys struct {
	inEnc, inAuth, outEnc, outAuth []byte
}

// splitKeymat takes the keys of a child SA from KEYMAT: "all keys for SAs
// carrying data from the initiator to the responder are taken before SAs
// going in the other direction", each SA's encryption key before its
// integrity key (§2.17). initiator is whether this end started the
// exchange that made the child.
func splitKeymat(km []byte, t transform.Transform, initiator bool) childKeys {
	take := func(n int) []byte {
		k := append([]byte(nil), km[:n]...)
		km = km[n:]
		return k
	}
	ie, ia := take(t.CipherKeyLen()), take(t.AuthKeyLen())
	re, ra := take(t.CipherKeyLen()), take(t.AuthKeyLen())
	if initiator {
		return childKeys{outEnc: ie, outAuth: ia, inEnc: re, inAuth: ra}
	}
	return childKeys{outEnc: re, outAuth: ra, inEnc: ie, inAuth: ia}
}

// keymatLen is the KEYMAT length a transform needs.
func keymatLen(t transform.Transform) int { return 2 * (t.CipherKeyLen() + t.AuthKeyLen()) }
