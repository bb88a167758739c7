package fallback

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// session holds one SA's crypto state. The AEAD and block cipher are safe for
// concurrent use; the stateful CBC modes and HMACs come from per-session
// pools so that queue pairs never share one.
type session struct {
	t         transform.Transform
	dir       ipsec.Direction
	truncated bool // AES-GCM with an 8-byte ICV: aead makes 16-byte tags
	salt      [4]byte
	// The small fields together: a session fits 96 bytes, a size class
	// (TestSessionSize), and every SA has one.
	closed atomic.Bool
	tagLen int32 // the AEAD's tag, written after the ciphertext
	icvLen int

	aead cipher.AEAD // AES-GCM or ChaCha20-Poly1305

	block  cipher.Block // CBC ciphers
	*pools              // nil for an AEAD: a session per SA stays small
}

// pools are the per-session state of CBC ciphers and HMACs.
type pools struct {
	cbc     sync.Pool // cipher.BlockMode with SetIV
	authKey []byte
	mac     sync.Pool // hash.Hash (HMAC)
}

type ivSetter interface {
	cipher.BlockMode
	SetIV([]byte)
}

func newSession(c driver.SessionConfig) (*session, error) {
	if err := driver.CheckConfig(&c); err != nil {
		return nil, err
	}
	t := c.Transform
	s := &session{t: t, dir: c.Direction, icvLen: t.ICVLen()}
	key := []byte(c.CipherKey)
	var err error
	switch t.Cipher {
	case transform.CipherAESGCM:
		n := len(key) - 4
		copy(s.salt[:], key[n:])
		var b cipher.Block
		if b, err = aes.NewCipher(key[:n]); err != nil {
			return nil, err
		}
		tag := t.AEADICVLen
		if tag < 12 {
			// Go's GCM makes tags of 12 to 16 bytes; an 8-byte ICV is
			// the first 8 bytes of the 16-byte tag (RFC 4106 §6).
			tag, s.truncated, s.block = 16, true, b
		}
		s.aead, err = cipher.NewGCMWithTagSize(b, tag)
	case transform.CipherChaCha20Poly1305:
		copy(s.salt[:], key[32:])
		s.aead, err = chacha20poly1305.New(key[:32])
	case transform.CipherDESCBC:
		s.block, err = des.NewCipher(key)
	case transform.Cipher3DESCBC:
		s.block, err = des.NewTripleDESCipher(key)
	case transform.CipherAESCBC:
		s.block, err = aes.NewCipher(key)
	}
	if err != nil {
		return nil, fmt.Errorf("fallback: %s: %w", t, err)
	}
	if s.aead != nil {
		s.tagLen = int32(s.aead.Overhead())
	}
	if (s.block != nil && !s.truncated) || t.Integrity != transform.IntegrityNone {
		s.pools = new(pools)
	}
	if s.block != nil && !s.truncated {
		blk, out := s.block, c.Direction == ipsec.Outbound
		zero := make([]byte, blk.BlockSize())
		s.cbc.New = func() any {
			if out {
				return cipher.NewCBCEncrypter(blk, zero).(ivSetter)
			}
			return cipher.NewCBCDecrypter(blk, zero).(ivSetter)
		}
	}
	if t.Integrity != transform.IntegrityNone {
		s.authKey = append([]byte(nil), c.AuthKey...)
		h := hashFor(t.Integrity)
		s.mac.New = func() any { return hmac.New(h, s.authKey) }
		// Make one now so that a bad key fails here, not on the data path.
		s.mac.Put(s.mac.Get())
	}
	return s, nil
}

func hashFor(i transform.Integrity) func() hash.Hash {
	switch i {
	case transform.HMACMD596:
		return md5.New
	case transform.HMACSHA196:
		return sha1.New
	case transform.HMACSHA256128:
		return sha256.New
	case transform.HMACSHA384192:
		return sha512.New384
	}
	return sha512.New
}

// Close zeroes the keys the session holds and makes it unusable. The expanded
// key schedules inside the standard library's cipher objects cannot be
// reached to zero; they are dropped for the garbage collector.
func (s *session) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	clear(s.salt[:])
	s.aead, s.block = nil, nil
	if s.pools != nil {
		clear(s.authKey)
		s.cbc.New, s.mac.New = nil, nil
	}
	return nil
}

var _ driver.Session = (*session)(nil)
