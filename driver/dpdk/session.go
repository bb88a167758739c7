//go:build dpdk && cgo

package dpdk

/*
#include <stdlib.h>
#include "cdpdk.h"
*/
import "C"

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// session is one SA's device session. Its keys live only inside the device
// session (DPDK copies them there); the Go side keeps the 4-byte AEAD salt,
// which it prepends to each op's IV. A session is safe for concurrent use.
//
// refs counts the owner's reference plus one per op in flight; the device
// session is freed when it drops to zero, so a device never sees a freed
// session.
type session struct {
	d      *Driver
	dev    uint8 // index in d.devs and in every queue pair's device list
	handle unsafe.Pointer
	t      transform.Transform
	dir    ipsec.Direction
	kind   uint8
	ivLen  uint8 // IV the device gets (salt included for AEADs)
	aadLen uint8
	block  int // CBC block size, 0 without a cipher
	cipher bool
	auth   bool
	icvLen int
	salt   [4]byte

	refs   atomic.Int64
	closed atomic.Bool
	freed  bool // guarded by d.mu
}

var _ driver.Session = (*session)(nil)

// NewSession makes a device session on the preferred device for the
// transform, spreading sessions over devices of equal rank. Only the
// lookaside crypto action is supported.
func (d *Driver) NewSession(c driver.SessionConfig) (driver.Session, error) {
	if d.closed.Load() {
		return nil, driver.ErrClosed
	}
	if c.Action != driver.LookasideCrypto {
		return nil, fmt.Errorf("%w: dpdk: action %s", driver.ErrUnsupported, c.Action)
	}
	if err := driver.CheckConfig(&c); err != nil {
		return nil, err
	}
	t := c.Transform
	a, ok := algoFor(t)
	cands := d.prefer[t]
	if !ok || len(cands) == 0 {
		return nil, fmt.Errorf("%w: dpdk: no device supports %s", driver.ErrUnsupported, t)
	}
	dev := cands[int(d.rr.Add(1))%len(cands)]
	s := &session{d: d, dev: uint8(dev), t: t, dir: c.Direction, kind: a.kind, ivLen: uint8(a.ivLen),
		cipher: a.cipher != 0, auth: a.auth != 0, icvLen: t.ICVLen()}
	if a.cipher != 0 {
		s.block = a.ivLen
	}
	conf := C.struct_ism_sess_conf{
		aead_algo: a.aead, cipher_algo: a.cipher, auth_algo: a.auth,
		iv_len: C.uint16_t(a.ivLen), digest_len: C.uint16_t(a.digest),
		cipher_key_len: C.uint16_t(a.keyLen), auth_key_len: C.uint16_t(a.authKeyLen),
	}
	if c.Direction == ipsec.Outbound {
		conf.encrypt = 1
	}
	if a.kind == C.ISM_KIND_AEAD {
		s.aadLen = 8
		if c.ESN {
			s.aadLen = 12 // RFC 4106 §5: SPI and the 64-bit sequence number
		}
		conf.aad_len = C.uint16_t(s.aadLen)
		copy(s.salt[:], c.CipherKey[a.keyLen:])
	}
	// The keys go to C memory that ism_sess_create wipes before it
	// returns; Go memory holding keys is never handed to C.
	n := max(a.keyLen+a.authKeyLen, 1)
	buf := C.malloc(C.size_t(n))
	keys := unsafe.Slice((*byte)(buf), n)
	copy(keys, c.CipherKey[:a.keyLen])
	copy(keys[a.keyLen:], c.AuthKey)
	conf.cipher_key = (*C.uint8_t)(buf)
	conf.auth_key = (*C.uint8_t)(unsafe.Add(buf, a.keyLen))
	var cerr C.int
	dv := &d.devs[dev]
	d.mu.Lock()
	if !d.closed.Load() {
		s.handle = C.ism_sess_create(C.uint8_t(dv.id), d.sessPool, &conf, &cerr)
	}
	if s.handle != nil {
		d.sessions[s] = struct{}{}
	}
	d.mu.Unlock()
	C.free(buf)
	if d.closed.Load() && s.handle == nil {
		return nil, driver.ErrClosed
	}
	if s.handle == nil {
		clear(s.salt[:])
		return nil, fmt.Errorf("dpdk: device %s cannot make a %s %s session: %s", dv.name, t, c.Direction, errnoString(cerr))
	}
	s.refs.Store(1)
	return s, nil
}

// Close frees the device session once no op uses it (the device's clear
// operation overwrites its copy of the keys) and zeroes the salt. Ops given
// a closed session complete with InvalidSession.
func (s *session) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.release(1)
	return nil
}

// acquire takes a reference for an op, or reports that the session is
// closed. Close stores closed before it drops the owner's reference, so a
// caller that sees closed false after its increment holds a live session.
func (s *session) acquire() bool {
	s.refs.Add(1)
	if s.closed.Load() {
		s.release(1)
		return false
	}
	return true
}

// release drops n references and frees the session when none is left.
func (s *session) release(n int64) {
	if s.refs.Add(-n) != 0 {
		return
	}
	s.d.mu.Lock()
	s.freeLocked()
	s.d.mu.Unlock()
}

// freeLocked frees the device session once; d.mu is held.
func (s *session) freeLocked() {
	if s.freed {
		return
	}
	s.freed = true
	delete(s.d.sessions, s)
	C.ism_sess_free(C.uint8_t(s.d.devs[s.dev].id), s.handle)
	clear(s.salt[:])
}

// String describes the session without key material.
func (s *session) String() string {
	return fmt.Sprintf("dpdk session %s %s on %s", s.t, s.dir, s.d.devs[s.dev].name)
}

// memory returns the bytes of the device session object, for tests that
// check what is left of the keys after Close; nil once the driver is
// closed.
func (s *session) memory() []byte {
	if s.d.closed.Load() {
		return nil
	}
	return unsafe.Slice((*byte)(s.handle), int(s.d.sessPool.elt_size))
}
