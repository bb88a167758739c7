package v2

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The Encrypted payload (RFC 7296 §3.14):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Next Payload  |C|  RESERVED   |         Payload Length        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Initialization Vector                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~                    Encrypted IKE Payloads                     ~
//	+               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|               |             Padding (0-255 octets)            |
//	+-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
//	|                                               |  Pad Length   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~                    Integrity Checksum Data                    ~
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// With a CBC cipher the checksum is the truncated HMAC of the whole
// message up to it (§3.14). With AES-GCM (RFC 5282) the IV is 8 bytes, the
// nonce is the 4-byte salt followed by it (§4), the associated data is the
// message from the IKE header through the Encrypted payload's generic
// header (§5.1), and the checksum is the GCM tag.

// errIntegrity is the one error a failed check returns: a message that
// does not verify is dropped, never answered (§2.21.2).
var errIntegrity = errors.New("v2: integrity check failed")

// gcmIVLen is AES-GCM's explicit IV (RFC 5282 §3.1).
const gcmIVLen = 8

// skCrypto protects the messages of one direction of an IKE SA. It is
// immutable after newSKCrypto and safe for concurrent use. It keeps the
// keys, not the cipher: an established IKE SA seldom sends or receives,
// and an expanded AES key with its GCM tables is most of a kilobyte, so
// the cipher is made again for each message (issue 13: memory per
// tunnel). The keys are the IKE SA's (ikeKeys), zeroed with them. An IKE
// SA keeps none: it makes one for each message (sealer, opener), on the
// stack.
type skCrypto struct {
	encr     encrFunc
	encKey   []byte // SK_e: the cipher key, and GCM's 4-byte salt after it
	integ    integFunc
	integKey []byte
}

// newSKCrypto returns the SK protection with the given keys (SK_e and SK_a
// of one direction).
func newSKCrypto(e encrFunc, ig integFunc, encKey, integKey []byte) (*skCrypto, error) {
	if len(encKey) != e.keyLen() || (!e.aead() && len(integKey) != ig.keyLen()) {
		return nil, fmt.Errorf("v2: SK key lengths %d/%d do not fit the algorithms", len(encKey), len(integKey))
	}
	c := &skCrypto{encr: e, encKey: encKey, integ: ig, integKey: integKey}
	var err error
	if c.gcm() {
		_, _, err = c.aead()
	} else {
		_, err = c.block()
	}
	return c, err
}

// skWith returns the SK protection of one direction of the SA with keys
// k: this end's messages (out) or the peer's.
func (sa *ikeSA) skWith(k *ikeKeys, out bool) skCrypto {
	e, a := k.ei(), k.ai() // the initiator's messages
	if out != sa.initiator {
		e, a = k.er(), k.ar()
	}
	return skCrypto{encr: sa.suite.encr, encKey: e, integ: sa.suite.integ, integKey: a}
}

// sealer returns the protection of this end's messages. The SA's mutex
// must be held, and the SA keyed.
func (sa *ikeSA) sealer() skCrypto { return sa.skWith(&sa.keys, true) }

// opener returns the protection of the peer's messages. A retransmitted
// request opens with the keys it came under: the responder's before its
// last IKE_INTERMEDIATE while it keeps them (addKeys). The SA's mutex
// must be held, and the SA keyed.
func (sa *ikeSA) opener(retransmit bool) skCrypto {
	if retransmit && sa.hs != nil && sa.hs.oldKeys != nil {
		return sa.skWith(sa.hs.oldKeys, false)
	}
	return sa.skWith(&sa.keys, false)
}

// keyed reports whether the SA has its keys: from IKE_SA_INIT's
// completion until it is removed.
func (sa *ikeSA) keyed() bool { return sa.keys.km != nil }

// checkKeys reports whether the SK protections of both directions can be
// made with the SA's suite and keys.
func (sa *ikeSA) checkKeys() error {
	for _, out := range []bool{true, false} {
		c := sa.skWith(&sa.keys, out)
		if _, err := newSKCrypto(c.encr, c.integ, c.encKey, c.integKey); err != nil {
			return err
		}
	}
	return nil
}

// gcm reports whether the cipher is AES-GCM (RFC 5282).
func (c *skCrypto) gcm() bool {
	switch c.encr.id {
	case encrAESGCM8, encrAESGCM12, encrAESGCM16:
		return true
	}
	return false
}

// block returns the CBC cipher.
func (c *skCrypto) block() (cipher.Block, error) {
	switch c.encr.id {
	case encr3DES:
		return des.NewTripleDESCipher(c.encKey)
	case encrAESCBC:
		return aes.NewCipher(c.encKey)
	}
	return nil, fmt.Errorf("v2: encryption %d cannot protect an IKE SA", c.encr.id)
}

// aead returns the GCM cipher, with a 16-byte tag (truncated to
// encr.aeadICV), and its salt.
func (c *skCrypto) aead() (cipher.AEAD, []byte, error) {
	n := c.encr.keyBits / 8
	b, err := aes.NewCipher(c.encKey[:n])
	if err != nil {
		return nil, nil, err
	}
	a, err := cipher.NewGCM(b)
	return a, c.encKey[n:], err
}

// blockSize is the CBC cipher's block size.
func (c *skCrypto) blockSize() int {
	if c.encr.id == encr3DES {
		return des.BlockSize
	}
	return aes.BlockSize
}

// overhead returns the IV and checksum lengths.
func (c *skCrypto) ivLen() int {
	if c.gcm() {
		return gcmIVLen
	}
	return c.blockSize()
}

func (c *skCrypto) icvLen() int {
	if c.gcm() {
		return c.encr.aeadICV
	}
	return c.integ.icv
}

// seal builds a message of header h whose payloads are all inside an SK
// payload, encrypted and protected. rand provides the IV.
func (c *skCrypto) seal(h Header, inner []Payload, rand io.Reader) ([]byte, error) {
	first := PayloadNone
	if len(inner) > 0 {
		first = inner[0].Type
	}
	return c.sealPayload(h, PayloadSK, first, nil, marshalPayloads(nil, inner), rand)
}

// sealPayload builds a message of header h with one encrypted payload of
// type typ (SK, or SKF whose Fragment Number and Total Fragments are
// fragHdr, RFC 7383 §2.5) holding plain. next is the payload's Next
// Payload field. The associated data (GCM) or the checksum (CBC) covers
// the IKE header and the whole payload header (RFC 7383 §2.5.3).
func (c *skCrypto) sealPayload(h Header, typ, next PayloadType, fragHdr, plain []byte, rand io.Reader) ([]byte, error) {
	// Padding: to the block size for CBC; none for GCM (RFC 5282 §3.2
	// leaves it optional). Pad Length is always there.
	pad := 0
	if !c.gcm() {
		bs := c.blockSize()
		pad = (bs - (len(plain)+1)%bs) % bs
	}
	padded := make([]byte, len(plain), len(plain)+pad+1)
	copy(padded, plain)
	padded = append(padded, make([]byte, pad+1)...)
	padded[len(padded)-1] = byte(pad)
	iv := make([]byte, c.ivLen())
	if _, err := io.ReadFull(rand, iv); err != nil {
		return nil, fmt.Errorf("v2: IV: %w", err)
	}
	bodyLen := len(fragHdr) + len(iv) + len(padded) + c.icvLen()
	h.Next = typ
	h.Length = uint32(HeaderSize + payloadHeaderSize + bodyLen)
	if h.Length > MaxMessageSize {
		return nil, fmt.Errorf("v2: message of %d bytes is too long", h.Length)
	}
	b := make([]byte, 0, h.Length+16)
	b = h.marshal(b)
	b = append(b, byte(next), 0)
	b = binary.BigEndian.AppendUint16(b, uint16(payloadHeaderSize+bodyLen))
	b = append(b, fragHdr...)
	aadEnd := len(b)
	b = append(b, iv...)
	if c.gcm() {
		aead, salt, err := c.aead()
		if err != nil {
			return nil, err
		}
		nonce := append(append(make([]byte, 0, 12), salt...), iv...)
		b = aead.Seal(b, nonce, padded, b[:aadEnd])
		return b[:len(b)-16+c.encr.aeadICV], nil // RFC 5282 §3: the tag's first octets
	}
	block, err := c.block()
	if err != nil {
		return nil, err
	}
	ctStart := len(b)
	b = append(b, padded...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(b[ctStart:], b[ctStart:])
	m := c.integ.new(c.integKey)
	m.Write(b)
	return append(b, m.Sum(nil)[:c.integ.icv]...), nil
}

// open verifies and decrypts the SK payload sk of message msg (sk.Body
// must be the tail of msg) and returns the payloads inside and their
// plaintext.
func (c *skCrypto) open(msg []byte, sk Payload) ([]Payload, []byte, error) {
	plain, err := c.decrypt(msg, sk.Body)
	if err != nil {
		return nil, nil, err
	}
	ps, err := parsePayloads(sk.Inner, plain, false)
	return ps, plain, err
}

// decrypt verifies and decrypts the encrypted part of an SK or SKF
// payload, body (IV, ciphertext, checksum), which must be the tail of msg,
// and returns the plaintext without its padding.
func (c *skCrypto) decrypt(msg, body []byte) ([]byte, error) {
	iv, icv := c.ivLen(), c.icvLen()
	if len(body) < iv+icv+1 || len(msg) < len(body)+HeaderSize+payloadHeaderSize {
		return nil, malformed("encrypted payload too short")
	}
	var plain []byte
	if c.gcm() {
		aead, salt, err := c.aead()
		if err != nil {
			return nil, err
		}
		aad := msg[:len(msg)-len(body)]
		nonce := append(append(make([]byte, 0, 12), salt...), body[:iv]...)
		ct := body[iv : len(body)-icv]
		tag := body[len(body)-icv:]
		if icv == 16 {
			if plain, err = aead.Open(nil, nonce, append(append([]byte(nil), ct...), tag...), aad); err != nil {
				return nil, errIntegrity
			}
		} else {
			// Go's GCM makes 16-byte tags; a shorter ICV is its
			// prefix. The keystream is its own inverse: sealing the
			// ciphertext gives the plaintext, sealing that gives the
			// full tag (as fallback's openTruncated does).
			p := aead.Seal(nil, nonce, ct, aad)[:len(ct)]
			again := aead.Seal(nil, nonce, p, aad)
			if subtle.ConstantTimeCompare(again[len(ct):len(ct)+icv], tag) != 1 {
				return nil, errIntegrity
			}
			plain = p
		}
	} else {
		m := c.integ.new(c.integKey)
		m.Write(msg[:len(msg)-icv])
		if subtle.ConstantTimeCompare(m.Sum(nil)[:icv], msg[len(msg)-icv:]) != 1 {
			return nil, errIntegrity
		}
		ct := body[iv : len(body)-icv]
		if len(ct) == 0 || len(ct)%c.blockSize() != 0 {
			return nil, malformed("ciphertext not a multiple of the block size")
		}
		block, err := c.block()
		if err != nil {
			return nil, err
		}
		plain = make([]byte, len(ct))
		cipher.NewCBCDecrypter(block, body[:iv]).CryptBlocks(plain, ct)
	}
	pad := int(plain[len(plain)-1])
	if pad+1 > len(plain) {
		return nil, malformed("encrypted payload padding")
	}
	return plain[:len(plain)-pad-1], nil
}

// openMessage decrypts a parsed message whose last payload is SK and
// replaces the SK payload with the payloads inside.
func (c *skCrypto) openMessage(msg []byte, m *Message) error {
	if len(m.Payloads) == 0 || m.Payloads[len(m.Payloads)-1].Type != PayloadSK {
		return malformed(fmt.Sprintf("%v message without an SK payload", m.Exchange))
	}
	sk := m.Payloads[len(m.Payloads)-1]
	inner, plain, err := c.open(msg, sk)
	if err != nil {
		return err
	}
	m.inner, m.plain = sk.Inner, plain
	outer := m.Payloads[:len(m.Payloads)-1]
	seen := map[PayloadType]bool{}
	for _, p := range outer {
		seen[p.Type] = true
	}
	for _, p := range inner {
		if p.Type.once() && seen[p.Type] {
			return malformed(fmt.Sprintf("two %v payloads", p.Type))
		}
	}
	m.Payloads = append(outer, inner...)
	return nil
}
