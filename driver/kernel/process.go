package kernel

import (
	"crypto/subtle"
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
)

// worker is the scratch space of one goroutine running ops through AF_ALG.
// The zero value is ready to use; a worker is not safe for concurrent use.
type worker struct {
	assoc  [20]byte // AEAD associated data: the ESP AAD, then the IV (8 bytes)
	assocR [20]byte // where the kernel copies it back
	digest [64]byte
	cmsg   []byte
	iov    [2][]byte
}

// AEAD ops carry an 8-byte explicit IV and 8 or 12 bytes of AAD (SPI and
// sequence number, or SPI and extended sequence number: RFC 4106 §5,
// RFC 7634 §2.1).
const aeadIVLen = 8

// run processes one op and sets its Status. Every range is checked against
// the buffer before any system call, so no op can make the kernel read or
// write outside the packet's memory.
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

// runAEAD seals or opens in place with rfc4106(gcm(aes)) or
// rfc7539esp(chacha20,poly1305). Both templates take the associated data
// followed by the 8-byte IV (which they skip: the IV comes as ALG_SET_IV and
// the salt from the key), then the text, then, to open, the tag.
func (w *worker) runAEAD(s *session, op *driver.Op) driver.Status {
	if op.IVLen != aeadIVLen || (op.AADLen != 8 && op.AADLen != 12) || op.DigestOff != op.CipherOff+op.CipherLen {
		return driver.InvalidArgs
	}
	region, ok := op.Region(op.CipherOff, op.CipherLen+s.icvLen)
	if !ok || op.CipherLen == 0 {
		return driver.InvalidArgs
	}
	n := int(op.AADLen)
	copy(w.assoc[:n], op.AAD[:n])
	copy(w.assoc[n:], op.IV[:aeadIVLen])
	assocLen := n + aeadIVLen
	text := region[:op.CipherLen]
	out := s.dir == ipsec.Outbound
	opfd, ok := s.aead.get()
	if !ok {
		return driver.InvalidSession
	}
	w.iov[0] = w.assoc[:assocLen]
	if out {
		w.iov[1] = text
	} else {
		w.iov[1] = region
	}
	w.setCmsg(out, op.IV[:aeadIVLen], assocLen)
	if err := sendAll(opfd, w.iov[:], w.cmsg); err != nil {
		s.aead.put(opfd, false)
		return driver.Fault
	}
	w.iov[0] = w.assocR[:assocLen]
	if out {
		w.iov[1] = region
	} else {
		w.iov[1] = text
	}
	got, err := unix.Readv(opfd, w.iov[:])
	if err == unix.EBADMSG {
		// The tag did not verify. Whatever the kernel wrote is
		// unverified plaintext: clear it.
		clear(text)
		s.aead.put(opfd, false)
		return driver.AuthFailed
	}
	if err != nil || got != assocLen+len(w.iov[1]) {
		s.aead.put(opfd, false)
		return driver.Fault
	}
	s.aead.put(opfd, true)
	return driver.OK
}

// runChain runs a CBC cipher and/or an HMAC. Outbound: encrypt, then MAC the
// auth range. Inbound: verify the MAC first, then decrypt (RFC 4303 §3.4.4).
func (w *worker) runChain(s *session, op *driver.Op) driver.Status {
	var text []byte
	if s.cipher != nil {
		var ok bool
		text, ok = op.Region(op.CipherOff, op.CipherLen)
		if !ok || len(text)%s.blockSize != 0 || int(op.IVLen) != s.blockSize {
			return driver.InvalidArgs
		}
	}
	var authData, icv []byte
	if s.auth != nil {
		var ok1, ok2 bool
		authData, ok1 = op.Region(op.AuthOff, op.AuthLen)
		icv, ok2 = op.Region(op.DigestOff, s.icvLen)
		if !ok1 || !ok2 || op.AuthLen == 0 {
			return driver.InvalidArgs
		}
	}
	if s.dir == ipsec.Outbound {
		if st := w.crypt(s, text, op.IV[:op.IVLen], true); st != driver.OK {
			return st
		}
		if s.auth == nil {
			return driver.OK
		}
		sum, st := w.mac(s, authData)
		if st == driver.OK {
			copy(icv, sum[:s.icvLen])
		}
		return st
	}
	if s.auth != nil {
		sum, st := w.mac(s, authData)
		if st != driver.OK {
			return st
		}
		if subtle.ConstantTimeCompare(sum[:s.icvLen], icv) != 1 {
			return driver.AuthFailed
		}
	}
	return w.crypt(s, text, op.IV[:op.IVLen], false)
}

// crypt encrypts or decrypts text in place with the session's skcipher.
func (w *worker) crypt(s *session, text, iv []byte, encrypt bool) driver.Status {
	if s.cipher == nil || len(text) == 0 {
		return driver.OK
	}
	fd, ok := s.cipher.get()
	if !ok {
		return driver.InvalidSession
	}
	w.iov[0] = text
	w.setCmsg(encrypt, iv, -1)
	if err := sendAll(fd, w.iov[:1], w.cmsg); err != nil {
		s.cipher.put(fd, false)
		return driver.Fault
	}
	got, err := unix.Readv(fd, w.iov[:1])
	if err != nil || got != len(text) {
		s.cipher.put(fd, false)
		return driver.Fault
	}
	s.cipher.put(fd, true)
	return driver.OK
}

// mac returns the untruncated HMAC of data.
func (w *worker) mac(s *session, data []byte) ([]byte, driver.Status) {
	fd, ok := s.auth.get()
	if !ok {
		return nil, driver.InvalidSession
	}
	w.iov[0] = data
	if err := sendAll(fd, w.iov[:1], nil); err != nil {
		s.auth.put(fd, false)
		return nil, driver.Fault
	}
	sum := w.digest[:s.digestLen]
	got, err := unix.Read(fd, sum)
	if err != nil || got != len(sum) {
		s.auth.put(fd, false)
		return nil, driver.Fault
	}
	s.auth.put(fd, true)
	return sum, driver.OK
}

// setCmsg writes the control messages of a cipher request: the operation,
// the IV (struct af_alg_iv) and, for AEADs (assocLen >= 0), the length of
// the associated data.
func (w *worker) setCmsg(encrypt bool, iv []byte, assocLen int) {
	w.cmsg = w.cmsg[:0]
	o := uint32(unix.ALG_OP_DECRYPT)
	if encrypt {
		o = unix.ALG_OP_ENCRYPT
	}
	w.cmsgU32(unix.ALG_SET_OP, o)
	var l [4]byte
	binary.NativeEndian.PutUint32(l[:], uint32(len(iv)))
	w.appendCmsg(unix.ALG_SET_IV, l[:], iv)
	if assocLen >= 0 {
		w.cmsgU32(unix.ALG_SET_AEAD_ASSOCLEN, uint32(assocLen))
	}
}

func (w *worker) cmsgU32(typ int, v uint32) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	w.appendCmsg(typ, b[:])
}

// appendCmsg appends one SOL_ALG control message made of parts.
func (w *worker) appendCmsg(typ int, parts ...[]byte) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	start := len(w.cmsg)
	if cap(w.cmsg) < start+unix.CmsgSpace(n) {
		// Three messages with the longest IV fit in cmsgCap; this
		// only runs once per worker.
		w.cmsg = append(make([]byte, 0, cmsgCap), w.cmsg...)
	}
	w.cmsg = w.cmsg[:start+unix.CmsgSpace(n)]
	clear(w.cmsg[start:])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&w.cmsg[start]))
	h.Level = unix.SOL_ALG
	h.Type = int32(typ)
	h.SetLen(unix.CmsgLen(n))
	data := w.cmsg[start+unix.CmsgLen(0):]
	for _, p := range parts {
		data = data[copy(data, p):]
	}
}

// cmsgCap holds the operation, a 16-byte IV and the AEAD associated data
// length, each in its own control message.
const cmsgCap = 128

// sendAll sends the request in one sendmsg; AF_ALG takes it whole or fails.
func sendAll(fd int, iov [][]byte, oob []byte) error {
	want := 0
	for _, b := range iov {
		want += len(b)
	}
	n, err := unix.SendmsgBuffers(fd, iov, oob, nil, 0)
	if err != nil {
		return err
	}
	if n != want {
		return unix.EMSGSIZE
	}
	return nil
}
