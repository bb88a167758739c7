package fallback

import (
	"crypto/hmac"
	"crypto/subtle"
	"hash"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
)

// worker is the scratch space of one goroutine running ops. The zero value is
// ready to use; a worker is not safe for concurrent use.
type worker struct {
	nonce   [12]byte
	sum     [64]byte
	scratch []byte // for truncated-tag GCM verification
}

// run processes one op and sets its Status. It never panics on op contents:
// every range is checked against the buffer first.
func (w *worker) run(op *driver.Op) {
	s, ok := op.Session.(*session)
	if !ok || s == nil || s.closed.Load() {
		op.Status = driver.InvalidSession
		return
	}
	if s.aead != nil {
		op.Status = w.runAEAD(s, op)
		return
	}
	op.Status = w.runChain(s, op)
}

// runAEAD seals or opens an AES-GCM or ChaCha20-Poly1305 op in place. The ICV
// must follow the ciphertext, as it does in ESP (RFC 4106 §3, RFC 7634 §3).
func (w *worker) runAEAD(s *session, op *driver.Op) driver.Status {
	if op.IVLen != 8 || op.AADLen > 12 || op.CipherLen < 0 || op.DigestOff != op.CipherOff+op.CipherLen {
		return driver.InvalidArgs
	}
	region, ok := op.Region(op.CipherOff, op.CipherLen+int(s.tagLen))
	if !ok {
		return driver.InvalidArgs
	}
	copy(w.nonce[:4], s.salt[:])
	copy(w.nonce[4:], op.IV[:8])
	aad := op.AAD[:op.AADLen]
	text := region[:op.CipherLen]
	if s.dir == ipsec.Outbound {
		s.aead.Seal(text[:0], w.nonce[:], text, aad)
		return driver.OK
	}
	if s.truncated {
		return w.openTruncated(s, op, text, aad)
	}
	if _, err := s.aead.Open(text[:0], w.nonce[:], region, aad); err != nil {
		return driver.AuthFailed
	}
	return driver.OK
}

// openTruncated verifies an AES-GCM op whose ICV is the first icvLen bytes of
// the full tag. GCM's keystream is its own inverse, so sealing the ciphertext
// yields the plaintext; sealing that plaintext again yields the ciphertext and
// its full tag. The packet is left untouched unless the ICV verifies.
func (w *worker) openTruncated(s *session, op *driver.Op, text, aad []byte) driver.Status {
	icv, ok := op.Region(op.DigestOff, s.icvLen)
	if !ok {
		return driver.InvalidArgs
	}
	n := len(text) + 16
	if cap(w.scratch) < 2*n {
		w.scratch = make([]byte, 2*(driver.MaxPacket+16))
		if cap(w.scratch) < 2*n {
			return driver.InvalidArgs
		}
	}
	plain := s.aead.Seal(w.scratch[:0], w.nonce[:], text, aad)[:len(text)]
	again := s.aead.Seal(w.scratch[n:n], w.nonce[:], plain, aad)
	if subtle.ConstantTimeCompare(again[len(text):len(text)+s.icvLen], icv) != 1 {
		return driver.AuthFailed
	}
	copy(text, plain)
	return driver.OK
}

// runChain runs a CBC cipher and/or an HMAC. Outbound: encrypt, then MAC the
// ciphertext. Inbound: verify the MAC, then decrypt (RFC 4303 §3.4.4).
func (w *worker) runChain(s *session, op *driver.Op) driver.Status {
	var text []byte
	if s.block != nil {
		var ok bool
		text, ok = op.Region(op.CipherOff, op.CipherLen)
		bs := s.block.BlockSize()
		if !ok || len(text)%bs != 0 || int(op.IVLen) != bs {
			return driver.InvalidArgs
		}
	}
	if s.dir == ipsec.Outbound {
		if text != nil {
			s.crypt(text, op.IV[:op.IVLen])
		}
		if s.icvLen > 0 {
			return w.mac(s, op, false)
		}
		return driver.OK
	}
	if s.icvLen > 0 {
		if st := w.mac(s, op, true); st != driver.OK {
			return st
		}
	}
	if text != nil {
		s.crypt(text, op.IV[:op.IVLen])
	}
	return driver.OK
}

func (s *session) crypt(text, iv []byte) {
	m := s.cbc.Get().(ivSetter)
	m.SetIV(iv)
	m.CryptBlocks(text, text)
	s.cbc.Put(m)
}

// mac computes the truncated HMAC over the auth range and writes it at
// DigestOff, or with verify compares it with what is there.
func (w *worker) mac(s *session, op *driver.Op, verify bool) driver.Status {
	data, ok1 := op.Region(op.AuthOff, op.AuthLen)
	icv, ok2 := op.Region(op.DigestOff, s.icvLen)
	if !ok1 || !ok2 {
		return driver.InvalidArgs
	}
	h := s.mac.Get().(hash.Hash)
	h.Reset()
	h.Write(data)
	sum := h.Sum(w.sum[:0])[:s.icvLen]
	s.mac.Put(h)
	if !verify {
		copy(icv, sum)
		return driver.OK
	}
	if !hmac.Equal(sum, icv) {
		return driver.AuthFailed
	}
	return driver.OK
}
