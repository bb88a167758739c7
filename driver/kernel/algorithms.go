package kernel

import (
	"fmt"

	"github.com/ismgw/ism/transform"
)

// Kernel crypto API names of the algorithms ISM's transforms use. XFRM takes
// the same names as the crypto API (the kernel's xfrm_algo.c tables map them;
// "ip xfrm state" prints them).
const (
	algGCM        = "rfc4106(gcm(aes))"             // RFC 4106: key is AES key || 4-byte salt
	algChaCha     = "rfc7539esp(chacha20,poly1305)" // RFC 7634: key is 32 bytes || 4-byte salt
	algAESCBC     = "cbc(aes)"                      // RFC 3602
	alg3DESCBC    = "cbc(des3_ede)"                 // RFC 2451
	algDESCBC     = "cbc(des)"                      // RFC 2405
	algNullCipher = "ecb(cipher_null)"              // RFC 2410
	algHMACMD5    = "hmac(md5)"                     // RFC 2403
	algHMACSHA1   = "hmac(sha1)"                    // RFC 2404
	algHMACSHA256 = "hmac(sha256)"                  // RFC 4868
	algHMACSHA384 = "hmac(sha384)"                  // RFC 4868
	algHMACSHA512 = "hmac(sha512)"                  // RFC 4868
)

// Algorithms is what a transform needs from the kernel, by crypto API name.
// Exactly one of AEAD and Cipher is set for ESP; AH has only Auth.
type Algorithms struct {
	AEAD   string // AEAD cipher (XFRMA_ALG_AEAD; AF_ALG type "aead")
	Cipher string // block cipher in CBC mode or the null cipher (XFRMA_ALG_CRYPT; AF_ALG "skcipher")
	Auth   string // HMAC (XFRMA_ALG_AUTH_TRUNC; AF_ALG "hash")
	// ICVBits is the ICV length in bits: the AEAD tag or the HMAC truncation.
	ICVBits int
}

// AlgorithmsFor maps an ISM transform to kernel algorithm names.
func AlgorithmsFor(t transform.Transform) (Algorithms, error) {
	if !t.Valid() {
		return Algorithms{}, fmt.Errorf("kernel: %w: %v", errNoMapping, t)
	}
	a := Algorithms{ICVBits: 8 * t.ICVLen()}
	switch t.Cipher {
	case transform.CipherAESGCM:
		a.AEAD = algGCM
	case transform.CipherChaCha20Poly1305:
		a.AEAD = algChaCha
	case transform.CipherAESCBC:
		a.Cipher = algAESCBC
	case transform.Cipher3DESCBC:
		a.Cipher = alg3DESCBC
	case transform.CipherDESCBC:
		a.Cipher = algDESCBC
	case transform.CipherNull:
		a.Cipher = algNullCipher
	}
	switch t.Integrity {
	case transform.HMACMD596:
		a.Auth = algHMACMD5
	case transform.HMACSHA196:
		a.Auth = algHMACSHA1
	case transform.HMACSHA256128:
		a.Auth = algHMACSHA256
	case transform.HMACSHA384192:
		a.Auth = algHMACSHA384
	case transform.HMACSHA512256:
		a.Auth = algHMACSHA512
	}
	return a, nil
}
