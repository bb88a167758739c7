package bench

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ismgw/ism/transform"
)

// raw is the baseline: the standard library's cipher and MAC for a
// transform, run over the same bytes the engine encrypts and authenticates,
// with no framing, SA lookup, sequence numbers or dispatch.
type raw struct {
	t     transform.Transform
	aead  cipher.AEAD
	enc   cipher.BlockMode
	dec   cipher.BlockMode
	mac   hash.Hash
	nonce [12]byte
	aad   [8]byte
	sum   [64]byte
	hdr   int // ESP header and IV bytes before the encrypted part
	n     int // bytes encrypted (payload, padding, trailer) or authenticated (AH)
	bufs  [][]byte
}

// newRaw returns the baseline for t on size-byte packets in bufs: the same
// memory the engine works in, so that both see the same caches.
func newRaw(t transform.Transform, size int, bufs [][]byte) *raw {
	r := &raw{t: t}
	key := make([]byte, t.CipherKeyLen())
	switch t.Cipher {
	case transform.CipherAESGCM:
		b, _ := aes.NewCipher(key[:t.KeyBits/8])
		tag := t.AEADICVLen
		if tag < 12 {
			tag = 16 // the engine computes truncated GCM tags as 16 bytes
		}
		r.aead, _ = cipher.NewGCMWithTagSize(b, tag)
	case transform.CipherChaCha20Poly1305:
		r.aead, _ = chacha20poly1305.New(key[:32])
	case transform.CipherDESCBC, transform.Cipher3DESCBC, transform.CipherAESCBC:
		var b cipher.Block
		switch t.Cipher {
		case transform.CipherDESCBC:
			b, _ = des.NewCipher(key)
		case transform.Cipher3DESCBC:
			b, _ = des.NewTripleDESCipher(key)
		default:
			b, _ = aes.NewCipher(key)
		}
		iv := make([]byte, b.BlockSize())
		r.enc, r.dec = cipher.NewCBCEncrypter(b, iv), cipher.NewCBCDecrypter(b, iv)
	}
	if t.Integrity != transform.IntegrityNone {
		h := map[transform.Integrity]func() hash.Hash{
			transform.HMACMD596: md5.New, transform.HMACSHA196: sha1.New, transform.HMACSHA256128: sha256.New,
			transform.HMACSHA384192: sha512.New384, transform.HMACSHA512256: sha512.New,
		}[t.Integrity]
		r.mac = hmac.New(h, make([]byte, t.AuthKeyLen()))
	}
	if t.Protocol == transform.AH {
		r.n = 20 + 12 + t.ICVLen() + size // the whole packet is authenticated
	} else {
		bs := t.BlockSize()
		r.n = size + (bs-(size+2)%bs)%bs + 2
		r.hdr = 8 + t.IVLen()
	}
	for _, b := range bufs {
		r.bufs = append(r.bufs, b[:r.hdr+r.n+64])
	}
	return r
}

// seal encrypts and authenticates bufs[i] as the engine does outbound.
func (r *raw) seal(i int) {
	b := r.bufs[i]
	switch {
	case r.aead != nil:
		binary.BigEndian.PutUint64(r.nonce[4:], uint64(i))
		r.aead.Seal(b[r.hdr:r.hdr], r.nonce[:], b[r.hdr:r.hdr+r.n], r.aad[:])
		return
	case r.enc != nil:
		r.enc.CryptBlocks(b[r.hdr:r.hdr+r.n], b[r.hdr:r.hdr+r.n])
	}
	if r.mac != nil {
		r.mac.Reset()
		r.mac.Write(b[:r.hdr+r.n])
		copy(b[r.hdr+r.n:], r.mac.Sum(r.sum[:0])[:r.t.ICVLen()])
	}
}

// open verifies and decrypts bufs[i] as the engine does inbound; it reports
// whether the ICV verified.
func (r *raw) open(i int) bool {
	b := r.bufs[i]
	if r.aead != nil {
		binary.BigEndian.PutUint64(r.nonce[4:], uint64(i))
		_, err := r.aead.Open(b[r.hdr:r.hdr], r.nonce[:], b[r.hdr:r.hdr+r.n+r.aead.Overhead()], r.aad[:])
		return err == nil
	}
	ok := true
	if r.mac != nil {
		r.mac.Reset()
		r.mac.Write(b[:r.hdr+r.n])
		ok = hmac.Equal(r.mac.Sum(r.sum[:0])[:r.t.ICVLen()], b[r.hdr+r.n:r.hdr+r.n+r.t.ICVLen()])
	}
	if r.dec != nil {
		r.dec.CryptBlocks(b[r.hdr:r.hdr+r.n], b[r.hdr:r.hdr+r.n])
	}
	return ok
}
