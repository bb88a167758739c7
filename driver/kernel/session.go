package kernel

import (
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// tfm is one keyed AF_ALG transform socket and the operation sockets
// accepted from it. An operation socket runs one request at a time, so each
// worker takes one for the duration of an op; idle ones are kept for reuse.
type tfm struct {
	fd     int
	mu     sync.Mutex
	idle   []int
	closed bool
}

// newTFM binds an AF_ALG socket to the algorithm and keys it. The key goes
// straight from the caller's memory to the kernel.
func newTFM(typ, name string, key []byte, authSize int) (*tfm, error) {
	fd, err := bindAlg(typ, name)
	if err != nil {
		return nil, err
	}
	if err := setKey(fd, key); err != nil {
		unix.Close(fd)
		// The error names the algorithm and key length, never the key.
		return nil, fmt.Errorf("setting a %d-byte key on %s fails with %s", len(key), name, unix.ErrnoName(errnoOf(err)))
	}
	if authSize > 0 {
		if err := setAuthSize(fd, authSize); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("setting a %d-byte tag on %s fails with %s", authSize, name, unix.ErrnoName(errnoOf(err)))
		}
	}
	return &tfm{fd: fd}, nil
}

// get returns an idle operation socket or accepts a new one.
func (t *tfm) get() (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return -1, false
	}
	if n := len(t.idle); n > 0 {
		fd := t.idle[n-1]
		t.idle = t.idle[:n-1]
		return fd, true
	}
	// accept4 with no address: unix.Accept4 cannot decode an AF_ALG
	// address and would close the new socket.
	fd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(t.fd), 0, 0, unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, false
	}
	return int(fd), true
}

// put returns an operation socket; one that failed, or that comes back after
// Close, is closed instead.
func (t *tfm) put(fd int, healthy bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || !healthy {
		unix.Close(fd)
		return
	}
	t.idle = append(t.idle, fd)
}

// close closes the sockets; the kernel frees the transform and with it the
// key (crypto_destroy_tfm zeroes the context with kfree_sensitive).
func (t *tfm) close() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	for _, fd := range t.idle {
		unix.Close(fd)
	}
	t.idle = nil
	unix.Close(t.fd)
}

// session is one SA's keys inside the kernel: an AEAD transform, or a cipher
// and/or an HMAC. The Go side holds no key bytes.
type session struct {
	d      *Driver
	dir    ipsec.Direction
	aead   *tfm
	cipher *tfm
	auth   *tfm
	// blockSize and ivLen check CBC ops; icvLen is the ICV on the wire,
	// digestLen the untruncated HMAC output read back from the kernel.
	blockSize, icvLen, digestLen int
	closed                       atomic.Bool
}

var _ driver.Session = (*session)(nil)

func newSession(d *Driver, c *driver.SessionConfig) (s *session, err error) {
	t := c.Transform
	a, err := AlgorithmsFor(t)
	if err != nil {
		return nil, err
	}
	s = &session{d: d, dir: c.Direction, blockSize: t.BlockSize(), icvLen: t.ICVLen(), digestLen: t.Integrity.KeyLen()}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	switch {
	case a.AEAD != "":
		s.aead, err = newTFM(typeAEAD, a.AEAD, c.CipherKey, t.ICVLen())
	case t.Encrypts():
		s.cipher, err = newTFM(typeSkcipher, a.Cipher, c.CipherKey, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("kernel: %s: %w", t, err)
	}
	if a.Auth != "" {
		if s.auth, err = newTFM(typeHash, a.Auth, c.AuthKey, 0); err != nil {
			return nil, fmt.Errorf("kernel: %s: %w", t, err)
		}
	}
	return s, nil
}

func (s *session) release() {
	s.aead.close()
	s.cipher.close()
	s.auth.close()
}

// Close closes the session's sockets, after which the kernel has dropped the
// keys; ops that still name the session complete with InvalidSession.
func (s *session) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.release()
	s.d.forget(s)
	return nil
}

// supported reports whether the algorithms t needs are all available.
func supported(t transform.Transform, have map[string]bool) bool {
	a, err := AlgorithmsFor(t)
	if err != nil {
		return false
	}
	switch {
	case a.AEAD != "" && !have[a.AEAD]:
		return false
	case a.AEAD == "" && t.Encrypts() && !have[a.Cipher]:
		return false
	case a.Auth != "" && !have[a.Auth]:
		return false
	}
	return true
}
