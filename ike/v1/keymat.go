package v1

import (
	"crypto"
	"crypto/hmac"
	_ "crypto/md5" // register the phase 1 hashes
	_ "crypto/sha1"
	_ "crypto/sha256"
	"encoding/binary"
)

// Key derivation of IKEv1, RFC 2409 §5 and Appendix B. The PRF is the HMAC
// of the negotiated hash (RFC 2409 §4: "the HMAC version of the negotiated
// hash algorithm is used as a pseudo-random function by default").

// prf returns HMAC-hash(key, data[0] | data[1] | ...).
func prf(h crypto.Hash, key []byte, data ...[]byte) []byte {
	m := hmac.New(h.New, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// SKEYIDPreShared is SKEYID for pre-shared key authentication:
// prf(pre-shared-key, Ni_b | Nr_b) (RFC 2409 §5).
func SKEYIDPreShared(h crypto.Hash, psk, ni, nr []byte) []byte {
	return prf(h, psk, ni, nr)
}

// SKEYIDSignature is SKEYID for signature authentication:
// prf(Ni_b | Nr_b, g^xy) (RFC 2409 §5).
func SKEYIDSignature(h crypto.Hash, ni, nr, gxy []byte) []byte {
	key := make([]byte, 0, len(ni)+len(nr))
	key = append(append(key, ni...), nr...)
	return prf(h, key, gxy)
}

// SKEYIDs are the keys derived from SKEYID (RFC 2409 §5):
//
//	SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
//	SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
//	SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
type SKEYIDs struct {
	D, A, E []byte
}

// DeriveSKEYIDs derives SKEYID_d, _a and _e.
func DeriveSKEYIDs(h crypto.Hash, skeyid, gxy []byte, ckyI, ckyR Cookie) SKEYIDs {
	var k SKEYIDs
	k.D = prf(h, skeyid, gxy, ckyI[:], ckyR[:], []byte{0})
	k.A = prf(h, skeyid, k.D, gxy, ckyI[:], ckyR[:], []byte{1})
	k.E = prf(h, skeyid, k.A, gxy, ckyI[:], ckyR[:], []byte{2})
	return k
}

// Zero overwrites the keys.
func (k *SKEYIDs) Zero() {
	clear(k.D)
	clear(k.A)
	clear(k.E)
}

// EncryptionKey returns the phase 1 encryption key of n bytes from
// SKEYID_e: its first n bytes when it is long enough, otherwise the
// expansion of RFC 2409 Appendix B, Ka = K1 | K2 | K3 ... with
// K1 = prf(SKEYID_e, 0) and Ki = prf(SKEYID_e, K(i-1)).
func EncryptionKey(h crypto.Hash, skeyidE []byte, n int) []byte {
	if len(skeyidE) >= n {
		return append([]byte(nil), skeyidE[:n]...)
	}
	out := make([]byte, 0, n+h.Size())
	k := prf(h, skeyidE, []byte{0})
	for {
		out = append(out, k...)
		if len(out) >= n {
			break
		}
		k = prf(h, skeyidE, k)
	}
	clear(out[n:])
	return out[:n]
}

// KeyMat returns n bytes of quick mode keying material for one SA
// (RFC 2409 §5.5):
//
//	KEYMAT = K1 | K2 | K3 | ...
//	K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
//	Ki = prf(SKEYID_d, K(i-1) | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
//
// gxy is nil without PFS. The SPI is the one the SA's receiver chose.
func KeyMat(h crypto.Hash, skeyidD, gxy []byte, protocol uint8, spi uint32, ni, nr []byte, n int) []byte {
	seed := make([]byte, 0, len(gxy)+5+len(ni)+len(nr))
	seed = append(seed, gxy...)
	seed = append(seed, protocol)
	seed = binary.BigEndian.AppendUint32(seed, spi)
	seed = append(append(seed, ni...), nr...)
	out := expand(h, skeyidD, seed, n)
	clear(seed)
	return out
}

// expand is the quick mode expansion: K1 = prf(key, seed),
// Ki = prf(key, K(i-1) | seed), output truncated to n bytes.
func expand(h crypto.Hash, key, seed []byte, n int) []byte {
	out := make([]byte, 0, n+h.Size())
	var k []byte
	for len(out) < n {
		k = prf(h, key, k, seed)
		out = append(out, k...)
	}
	clear(out[n:])
	return out[:n]
}

// Phase1IV is the IV of the first encrypted phase 1 message,
// hash(g^xi | g^xr) truncated to the cipher block size (RFC 2409 App. B).
func Phase1IV(h crypto.Hash, gxi, gxr []byte, blockSize int) []byte {
	m := h.New()
	m.Write(gxi)
	m.Write(gxr)
	return m.Sum(nil)[:blockSize]
}

// ExchangeIV is the first IV of a quick mode or informational exchange,
// hash(last phase 1 CBC output block | M-ID) truncated to the block size
// (RFC 2409 App. B).
func ExchangeIV(h crypto.Hash, phase1IV []byte, msgID uint32, blockSize int) []byte {
	m := h.New()
	m.Write(phase1IV)
	var id [4]byte
	binary.BigEndian.PutUint32(id[:], msgID)
	m.Write(id[:])
	return m.Sum(nil)[:blockSize]
}
