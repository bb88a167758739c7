//go:build dpdk && cgo

package dpdk

/*
#include <rte_cryptodev.h>
#include "cdpdk.h"
*/
import "C"

import (
	"github.com/ismgw/ism/transform"
)

// device is one cryptodev as EAL found it.
type device struct {
	id       uint8
	name     string // e.g. "crypto_aesni_mb" or a PCI device's name
	pmd      string // the poll mode driver, e.g. "crypto_aesni_mb"
	hw       bool   // RTE_CRYPTODEV_FF_HW_ACCELERATED
	maxQP    int
	headroom int
	tailroom int
	features uint64
}

// listDevices returns every cryptodev in the process.
func listDevices() []device {
	var out []device
	for id := 0; id < C.RTE_CRYPTO_MAX_DEVS; id++ {
		if C.rte_cryptodev_is_valid_dev(C.uint8_t(id)) == 0 {
			continue
		}
		var info C.struct_rte_cryptodev_info
		C.rte_cryptodev_info_get(C.uint8_t(id), &info)
		out = append(out, device{
			id:       uint8(id),
			name:     C.GoString(C.rte_cryptodev_name_get(C.uint8_t(id))),
			pmd:      C.GoString(info.driver_name),
			hw:       info.feature_flags&C.RTE_CRYPTODEV_FF_HW_ACCELERATED != 0,
			maxQP:    int(info.max_nb_queue_pairs),
			headroom: int(info.min_mbuf_headroom_req),
			tailroom: int(info.min_mbuf_tailroom_req),
			features: uint64(info.feature_flags),
		})
	}
	return out
}

// algo is how a transform maps onto cryptodev transforms: one AEAD, or a
// cipher and/or an auth transform.
type algo struct {
	kind       uint8 // C.ISM_KIND_AEAD or C.ISM_KIND_SYM
	aead       C.int
	cipher     C.int
	auth       C.int
	keyLen     int // cipher key without the salt
	authKeyLen int
	ivLen      int // the IV the device gets: salt and explicit IV for AEADs
	digest     int
}

// algoFor maps t; ok is false for transforms cryptodev cannot express.
// ESP's NULL cipher (RFC 2410) is an auth-only session: encrypting with
// NULL changes nothing.
func algoFor(t transform.Transform) (a algo, ok bool) {
	a = algo{kind: C.ISM_KIND_SYM, keyLen: t.CipherKeyLen() - t.SaltLen(), authKeyLen: t.AuthKeyLen(), digest: t.ICVLen()}
	switch t.Cipher {
	case transform.CipherAESGCM:
		a.kind, a.aead, a.ivLen = C.ISM_KIND_AEAD, C.RTE_CRYPTO_AEAD_AES_GCM, 12
		return a, true
	case transform.CipherChaCha20Poly1305:
		a.kind, a.aead, a.ivLen = C.ISM_KIND_AEAD, C.RTE_CRYPTO_AEAD_CHACHA20_POLY1305, 12
		return a, true
	case transform.CipherAESCBC:
		a.cipher, a.ivLen = C.RTE_CRYPTO_CIPHER_AES_CBC, 16
	case transform.Cipher3DESCBC:
		a.cipher, a.ivLen = C.RTE_CRYPTO_CIPHER_3DES_CBC, 8
	case transform.CipherDESCBC:
		a.cipher, a.ivLen = C.RTE_CRYPTO_CIPHER_DES_CBC, 8
	case transform.CipherNull, transform.CipherNone:
		a.keyLen = 0
	default:
		return a, false
	}
	switch t.Integrity {
	case transform.IntegrityNone:
	case transform.HMACMD596:
		a.auth = C.RTE_CRYPTO_AUTH_MD5_HMAC
	case transform.HMACSHA196:
		a.auth = C.RTE_CRYPTO_AUTH_SHA1_HMAC
	case transform.HMACSHA256128:
		a.auth = C.RTE_CRYPTO_AUTH_SHA256_HMAC
	case transform.HMACSHA384192:
		a.auth = C.RTE_CRYPTO_AUTH_SHA384_HMAC
	case transform.HMACSHA512256:
		a.auth = C.RTE_CRYPTO_AUTH_SHA512_HMAC
	default:
		return a, false
	}
	return a, a.cipher != 0 || a.auth != 0
}

// supports asks the device's capability table whether it takes a, with the
// key, IV, digest and AAD sizes ESP uses (AAD of 8 bytes, 12 with ESN:
// RFC 4106 §5).
func (d *device) supports(a algo) bool {
	id := C.uint8_t(d.id)
	if a.kind == C.ISM_KIND_AEAD {
		for _, aad := range []int{8, 12} {
			if C.ism_check_aead(id, a.aead, C.uint16_t(a.keyLen), C.uint16_t(a.digest), C.uint16_t(aad), C.uint16_t(a.ivLen)) == 0 {
				return false
			}
		}
		return true
	}
	if a.cipher != 0 && C.ism_check_cipher(id, a.cipher, C.uint16_t(a.keyLen), C.uint16_t(a.ivLen)) == 0 {
		return false
	}
	if a.auth != 0 && C.ism_check_auth(id, a.auth, C.uint16_t(a.authKeyLen), C.uint16_t(a.digest)) == 0 {
		return false
	}
	return true
}

// rank orders the devices that support t; lower is preferred. Hardware
// comes first, then the software device built for the algorithm: the
// aesni_gcm PMD for AES-GCM, chacha20_poly1305 for ChaCha20-Poly1305,
// aesni_mb (multi-buffer) for CBC and HMAC, and the OpenSSL PMD last.
func rank(d *device, t transform.Transform) int {
	if d.hw {
		return 0
	}
	var order []string
	switch t.Cipher {
	case transform.CipherAESGCM:
		order = []string{"crypto_aesni_gcm", "crypto_aesni_mb"}
	case transform.CipherChaCha20Poly1305:
		order = []string{"crypto_chacha20_poly1305", "crypto_aesni_mb"}
	default:
		order = []string{"crypto_aesni_mb"}
	}
	for i, n := range order {
		if d.pmd == n {
			return 1 + i
		}
	}
	if d.pmd == "crypto_openssl" {
		return 10
	}
	return 20
}
