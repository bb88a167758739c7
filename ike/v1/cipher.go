package v1

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"fmt"

	"github.com/ismgw/ism/ike"
)

// Message encryption after phase 1 keying (RFC 2409 Appendix B, RFC 2408
// §3.1 E flag): the body after the header is CBC-encrypted, padded with
// zeros to the block size; each message's IV is the last ciphertext block
// of the previous message of the same exchange.

// newBlock returns the block cipher of a phase 1 encryption algorithm.
func newBlock(enc ike.Encryption, key []byte) (cipher.Block, error) {
	switch enc {
	case ike.EncDES:
		return des.NewCipher(key)
	case ike.Enc3DES:
		return des.NewTripleDESCipher(key)
	case ike.EncAES128, ike.EncAES192, ike.EncAES256:
		return aes.NewCipher(key)
	}
	return nil, fmt.Errorf("v1: encryption %v not supported", enc)
}

// blockLocked returns the block cipher of the SA's encrypted messages, or
// nil before phase 1 keying and after the SA's deletion. It is made from
// ekey at each use rather than kept: an AES key schedule is half a
// kilobyte per tunnel, and an established IKE SA encrypts a few messages
// a minute at most. Daemon.mu must be held.
func (sa *ikeSA) blockLocked() cipher.Block {
	ekey := sa.ekey()
	if len(ekey) == 0 {
		return nil
	}
	b, err := newBlock(sa.policy.Encryption, ekey)
	if err != nil { // checked when the key was derived or imported
		return nil
	}
	return b
}

// encryptMessage encrypts the body of the plaintext message msg with iv,
// sets the E flag and the length, and returns the message and the IV for
// the next message.
func encryptMessage(b cipher.Block, iv, msg []byte) (out, next []byte) {
	bs := b.BlockSize()
	body := msg[HeaderSize:]
	n := (len(body) + bs - 1) / bs * bs
	out = make([]byte, HeaderSize+n)
	copy(out, msg[:HeaderSize])
	copy(out[HeaderSize:], body) // zero padding
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out[HeaderSize:], out[HeaderSize:])
	h := Header(out)
	f := h.Fields()
	f.Flags |= FlagEncryption
	f.Length = uint32(len(out))
	h.Encode(&f)
	next = append([]byte(nil), out[len(out)-bs:]...)
	return out, next
}

// decryptMessage decrypts the body of an encrypted message with iv and
// returns the plaintext body and the IV for the next message.
func decryptMessage(b cipher.Block, iv, msg []byte) (body, next []byte, err error) {
	bs := b.BlockSize()
	ct := msg[HeaderSize:]
	if len(ct) == 0 || len(ct)%bs != 0 {
		return nil, nil, fmt.Errorf("%w: encrypted body of %d bytes", ErrMalformed, len(ct))
	}
	body = make([]byte, len(ct))
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(body, ct)
	next = append([]byte(nil), ct[len(ct)-bs:]...)
	return body, next, nil
}

// parseEncrypted decrypts and parses an encrypted message.
func parseEncrypted(b cipher.Block, iv, msg []byte) (*Message, []byte, error) {
	h := Header(msg)
	if !h.IsValid() {
		return nil, nil, fmt.Errorf("%w: bad header or length", ErrMalformed)
	}
	body, next, err := decryptMessage(b, iv, msg)
	if err != nil {
		return nil, nil, err
	}
	ps, err := ParsePayloads(h.NextPayload(), body, true)
	if err != nil {
		return nil, nil, err
	}
	return &Message{Header: h.Fields(), Payloads: ps}, next, nil
}
