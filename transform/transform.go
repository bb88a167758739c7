// Package transform is the table of IPsec transforms ISM supports: the ESP
// (RFC 4303) and AH (RFC 4302) algorithm pairs a transform set may list, each
// with its JUNOSe-style name, key lengths, IV, block and ICV sizes.
//
// The table is the one place key lengths live; the configuration, the SA
// database, IKE proposals and the drivers all read it.
package transform

import (
	"fmt"
	"sort"
	"strings"
)

// Protocol is the IPsec encapsulation protocol, numbered as in the IP
// protocol field.
type Protocol uint8

// Protocols.
const (
	ESP Protocol = 50
	AH  Protocol = 51
)

func (p Protocol) String() string {
	switch p {
	case ESP:
		return "esp"
	case AH:
		return "ah"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// Cipher is an ESP encryption algorithm.
type Cipher uint8

// Ciphers. CipherNone means the transform has no encryption (AH); CipherNull
// is ESP's NULL encryption (RFC 2410).
const (
	CipherNone             Cipher = iota
	CipherNull                    // RFC 2410
	CipherDESCBC                  // RFC 2405
	Cipher3DESCBC                 // RFC 2451
	CipherAESCBC                  // RFC 3602
	CipherAESGCM                  // RFC 4106
	CipherChaCha20Poly1305        // RFC 7634
)

var cipherNames = [...]string{"none", "null", "des-cbc", "3des-cbc", "aes-cbc", "aes-gcm", "chacha20-poly1305"}

func (c Cipher) String() string {
	if int(c) < len(cipherNames) {
		return cipherNames[c]
	}
	return fmt.Sprintf("cipher-%d", uint8(c))
}

// AEAD reports whether the cipher authenticates as well as encrypts.
func (c Cipher) AEAD() bool { return c == CipherAESGCM || c == CipherChaCha20Poly1305 }

// Integrity is an HMAC integrity algorithm, truncated as its RFC says.
type Integrity uint8

// Integrity algorithms.
const (
	IntegrityNone Integrity = iota
	HMACMD596               // RFC 2403
	HMACSHA196              // RFC 2404
	HMACSHA256128           // RFC 4868
	HMACSHA384192           // RFC 4868
	HMACSHA512256           // RFC 4868
)

var integrityNames = [...]string{"none", "hmac-md5-96", "hmac-sha1-96", "hmac-sha2-256-128", "hmac-sha2-384-192", "hmac-sha2-512-256"}

func (i Integrity) String() string {
	if int(i) < len(integrityNames) {
		return integrityNames[i]
	}
	return fmt.Sprintf("integrity-%d", uint8(i))
}

// KeyLen is the HMAC key length in bytes (the hash's output size).
func (i Integrity) KeyLen() int {
	return [...]int{0, 16, 20, 32, 48, 64}[i]
}

// ICVLen is the truncated ICV length in bytes.
func (i Integrity) ICVLen() int {
	return [...]int{0, 12, 12, 16, 24, 32}[i]
}

// Transform is one entry of the transform table: an encapsulation protocol
// and its algorithms. The zero value is not a valid transform; get one from
// Lookup or All. Transforms are comparable and safe to copy.
type Transform struct {
	Protocol  Protocol
	Cipher    Cipher
	KeyBits   int // cipher key size in bits, without salt; 0 for none/null
	Integrity Integrity
	// AEADICVLen is the ICV length of an AEAD cipher (8, 12 or 16 for
	// AES-GCM); 0 otherwise.
	AEADICVLen int
}

// Name returns the JUNOSe-style name, e.g. "esp-3des-hmac-sha".
func (t Transform) Name() string {
	var b strings.Builder
	b.WriteString(t.Protocol.String())
	switch t.Cipher {
	case CipherNull:
		b.WriteString("-null")
	case CipherDESCBC:
		b.WriteString("-des")
	case Cipher3DESCBC:
		b.WriteString("-3des")
	case CipherAESCBC:
		fmt.Fprintf(&b, "-aes%d", t.KeyBits)
	case CipherAESGCM:
		fmt.Fprintf(&b, "-aes%d-gcm%d", t.KeyBits, t.AEADICVLen)
	case CipherChaCha20Poly1305:
		b.WriteString("-chacha20-poly1305")
	}
	if t.Integrity != IntegrityNone {
		b.WriteString("-hmac-")
		b.WriteString([...]string{"", "md5", "sha", "sha256", "sha384", "sha512"}[t.Integrity])
	}
	return b.String()
}

// String returns Name.
func (t Transform) String() string { return t.Name() }

// CipherKeyLen is the length in bytes of the encryption keying material,
// including the salt of AEAD ciphers (RFC 4106 §8.1, RFC 7634 §2).
func (t Transform) CipherKeyLen() int {
	n := t.KeyBits / 8
	if t.Cipher.AEAD() {
		n += 4
	}
	return n
}

// AuthKeyLen is the length in bytes of the integrity key.
func (t Transform) AuthKeyLen() int { return t.Integrity.KeyLen() }

// SaltLen is the length of the implicit nonce part carried in the cipher key.
func (t Transform) SaltLen() int {
	if t.Cipher.AEAD() {
		return 4
	}
	return 0
}

// IVLen is the length of the explicit per-packet IV on the wire.
func (t Transform) IVLen() int {
	switch t.Cipher {
	case CipherDESCBC, Cipher3DESCBC, CipherAESGCM, CipherChaCha20Poly1305:
		return 8
	case CipherAESCBC:
		return 16
	}
	return 0
}

// BlockSize is the cipher block size the ESP payload is padded to; ESP
// always aligns to at least 4 bytes (RFC 4303 §2.4).
func (t Transform) BlockSize() int {
	switch t.Cipher {
	case CipherDESCBC, Cipher3DESCBC:
		return 8
	case CipherAESCBC:
		return 16
	}
	return 4
}

// ICVLen is the length of the integrity check value.
func (t Transform) ICVLen() int {
	if t.Cipher.AEAD() {
		return t.AEADICVLen
	}
	return t.Integrity.ICVLen()
}

// Encrypts reports whether the transform provides confidentiality.
func (t Transform) Encrypts() bool {
	return t.Cipher != CipherNone && t.Cipher != CipherNull
}

// Authenticates reports whether the transform provides integrity.
func (t Transform) Authenticates() bool { return t.ICVLen() > 0 }

// Valid reports whether t is a transform of the table.
func (t Transform) Valid() bool {
	u, ok := byName[t.Name()]
	return ok && u == t
}

var (
	table  []Transform
	byName = map[string]Transform{}
	// aliases maps alternative spellings to table names.
	aliases = map[string]string{}
)

func add(t Transform) {
	table = append(table, t)
	byName[t.Name()] = t
}

func init() {
	integrities := []Integrity{HMACMD596, HMACSHA196, HMACSHA256128, HMACSHA384192, HMACSHA512256}
	// ESP with a block cipher, with and without integrity. ESP with neither
	// confidentiality nor integrity (esp-null alone) is not in the table
	// (RFC 4303 §3.2).
	type cbc struct {
		c    Cipher
		bits int
	}
	for _, c := range []cbc{{CipherDESCBC, 64}, {Cipher3DESCBC, 192}, {CipherAESCBC, 128}, {CipherAESCBC, 192}, {CipherAESCBC, 256}} {
		add(Transform{Protocol: ESP, Cipher: c.c, KeyBits: c.bits})
		for _, i := range integrities {
			add(Transform{Protocol: ESP, Cipher: c.c, KeyBits: c.bits, Integrity: i})
		}
	}
	for _, i := range integrities {
		add(Transform{Protocol: ESP, Cipher: CipherNull, Integrity: i})
	}
	for _, bits := range []int{128, 256} {
		for _, icv := range []int{8, 12, 16} {
			add(Transform{Protocol: ESP, Cipher: CipherAESGCM, KeyBits: bits, AEADICVLen: icv})
		}
	}
	add(Transform{Protocol: ESP, Cipher: CipherChaCha20Poly1305, KeyBits: 256, AEADICVLen: 16})
	for _, i := range integrities {
		add(Transform{Protocol: AH, Integrity: i})
	}
	// Spellings used by other vendors and by RFC-named tools.
	for _, bits := range []string{"128", "192", "256"} {
		aliases["esp-aes"+bits+"-cbc-hmac-sha1"] = "esp-aes" + bits + "-hmac-sha"
		aliases["esp-aes"+bits+"-cbc-hmac-sha256"] = "esp-aes" + bits + "-hmac-sha256"
	}
	aliases["esp-aes-hmac-sha"] = "esp-aes128-hmac-sha"
	aliases["ah-hmac-sha1"] = "ah-hmac-sha"
}

// Lookup returns the transform with the given JUNOSe-style name (case
// insensitive; a few common aliases such as esp-aes128-cbc-hmac-sha1 are
// accepted).
func Lookup(name string) (Transform, bool) {
	name = strings.ToLower(name)
	if a, ok := aliases[name]; ok {
		name = a
	}
	t, ok := byName[name]
	return t, ok
}

// All returns every transform of the table, ESP first, in a stable order.
func All() []Transform {
	out := make([]Transform, len(table))
	copy(out, table)
	return out
}

// Names returns every transform name, sorted.
func Names() []string {
	out := make([]string, 0, len(table))
	for _, t := range table {
		out = append(out, t.Name())
	}
	sort.Strings(out)
	return out
}
