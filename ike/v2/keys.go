package v2

import (
	"encoding/binary"
	"errors"

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

// ikeKeys are the seven keys of an IKE SA (§2.14), in one buffer in the
// order prf+ makes them: SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi |
// SK_pr (a slice each would cost 168 bytes an IKE SA, issue 13). They
// are never printed and are zeroed with the SA. The zero value holds no
// keys.
type ikeKeys struct {
	km         []byte
	ps, is, es uint8 // the lengths of SK_d and SK_p, SK_a, SK_e
}

// maxKeyLen is the longest key an ikeKeys holds.
const maxKeyLen = 255

// key returns the i-th key (0 is SK_d, 6 SK_pr); nil for SK_pi and SK_pr
// once dropped (dropAuth).
func (k *ikeKeys) key(i int) []byte {
	lens := [7]int{int(k.ps), int(k.is), int(k.is), int(k.es), int(k.es), int(k.ps), int(k.ps)}
	off := 0
	for _, n := range lens[:i] {
		off += n
	}
	if off+lens[i] > len(k.km) {
		return nil
	}
	return k.km[off : off+lens[i] : off+lens[i]]
}

// dropAuth zeroes and lets go SK_pi and SK_pr, which only the AUTH
// payloads of IKE_AUTH and IKE_INTERMEDIATE's IntAuth use (§2.15, RFC
// 9242 §3.3.2): an established IKE SA keeps the other five, in a buffer
// of their size (issue 13).
func (k *ikeKeys) dropAuth() {
	n := len(k.km) - 2*int(k.ps)
	if k.km == nil || n < 0 || len(k.pi()) == 0 {
		return
	}
	km := append(make([]byte, 0, n), k.km[:n]...)
	k.zero()
	k.km = km
}

func (k *ikeKeys) d() []byte  { return k.key(0) }
func (k *ikeKeys) ai() []byte { return k.key(1) }
func (k *ikeKeys) ar() []byte { return k.key(2) }
func (k *ikeKeys) ei() []byte { return k.key(3) }
func (k *ikeKeys) er() []byte { return k.key(4) }
func (k *ikeKeys) pi() []byte { return k.key(5) }
func (k *ikeKeys) pr() []byte { return k.key(6) }

// all returns the seven keys in order.
func (k *ikeKeys) all() [7][]byte {
	var out [7][]byte
	for i := range out {
		out[i] = k.key(i)
	}
	return out
}

// packKeys makes the keys of an IKE SA from the seven keys in order,
// copied: SK_d, SK_pi and SK_pr of one length (SK_pi and SK_pr may be
// empty: dropped), SK_ai and SK_ar of another, SK_ei and SK_er of a
// third.
func packKeys(parts [7][]byte) (ikeKeys, error) {
	ps, is, es := len(parts[0]), len(parts[1]), len(parts[3])
	pp := len(parts[5])
	if ps == 0 || es == 0 || max(ps, is, es) > maxKeyLen || (pp != ps && pp != 0) || len(parts[6]) != pp ||
		len(parts[2]) != is || len(parts[4]) != es {
		return ikeKeys{}, errKeyLengths
	}
	var km []byte
	for _, b := range parts {
		km = append(km, b...)
	}
	return ikeKeys{km: km, ps: uint8(ps), is: uint8(is), es: uint8(es)}, nil
}

// errKeyLengths refuses keys of lengths that do not go together.
var errKeyLengths = errors.New("v2: IKE SA keys of inconsistent lengths")

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
	return ikeKeys{km: km, ps: uint8(ps), is: uint8(is), es: uint8(es)}
}

// zero zeroes the keys; they stay, zero, until the value is let go.
func (k *ikeKeys) zero() { clear(k.km[:cap(k.km)]) }

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
