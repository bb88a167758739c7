package kernel

import (
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/netns"
)

// XFRM is a netlink connection to the XFRM SA and policy databases of one
// network namespace. It sends one request at a time and is safe for
// concurrent use.
//
// The netlink plumbing is written here against golang.org/x/sys/unix rather
// than taken from a netlink library, for key hygiene: requests carrying keys
// are built in a buffer of fixed capacity and wiped after sending, replies
// (which echo keys for GETSA) are read into a buffer that is wiped after
// parsing, and NETLINK_CAP_ACK keeps the kernel from echoing requests in
// error replies. github.com/vishvananda/netlink prints keys in
// XfrmStateAlgo.String and has no XFRMA_OFFLOAD_DEV; github.com/mdlayher/netlink
// copies each request into a private buffer, logs raw messages under NLDEBUG,
// and misreads extended acknowledgements of capped error replies.
type XFRM struct {
	mu   sync.Mutex
	fd   int
	pid  uint32
	seq  uint32
	req  *msgBuilder
	resp []byte
}

// respSize is the receive buffer: one SA with the largest keys and replay
// bitmap, or an error with its extended acknowledgement.
const respSize = 16384

// OpenXFRM connects to the XFRM databases of a network namespace, named as
// "ip netns" names it or by path (/proc/PID/ns/net); "" is the caller's own.
// It needs CAP_NET_ADMIN (and CAP_SYS_ADMIN to enter another namespace).
func OpenXFRM(ns string) (*XFRM, error) {
	if ns == "" {
		return newXFRM()
	}
	var x *XFRM
	err := netns.Do(ns, func() (err error) {
		x, err = newXFRM()
		return err
	})
	return x, err
}

// newXFRM opens the socket in the calling thread's network namespace.
func newXFRM() (*XFRM, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_XFRM)
	if err != nil {
		return nil, fmt.Errorf("kernel: socket(AF_NETLINK, NETLINK_XFRM): %w", err)
	}
	x := &XFRM{fd: fd, req: newMsgBuilder(), resp: make([]byte, respSize)}
	if err := x.setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return x, nil
}

func (x *XFRM) setup() error {
	if err := unix.Bind(x.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("kernel: bind netlink socket: %w", err)
	}
	sa, err := unix.Getsockname(x.fd)
	if err != nil {
		return fmt.Errorf("kernel: netlink socket name: %w", err)
	}
	x.pid = sa.(*unix.SockaddrNetlink).Pid
	// Error replies must not echo the request (it may hold keys). Kernels
	// older than 4.3 lack the option and cannot be used safely.
	if err := unix.SetsockoptInt(x.fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1); err != nil {
		return fmt.Errorf("kernel: NETLINK_CAP_ACK: %w", err)
	}
	// The kernel's error text is a diagnostic only: carry on without it.
	_ = unix.SetsockoptInt(x.fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	tv := unix.Timeval{Sec: 10}
	if err := unix.SetsockoptTimeval(x.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("kernel: netlink receive timeout: %w", err)
	}
	return nil
}

// Close closes the connection; the SAs and policies stay installed.
func (x *XFRM) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.fd < 0 {
		return nil
	}
	err := unix.Close(x.fd)
	x.fd = -1
	return err
}

// Error is a request the kernel refused. It unwraps to the errno and to
// ErrNoSA, ErrExists or ErrNotSupported where one applies.
type Error struct {
	Op      string     // what was asked, e.g. "add SA 0x00001000 192.0.2.1->192.0.2.2/esp"
	Errno   unix.Errno // the kernel's answer
	Message string     // the kernel's extended acknowledgement text, if any
}

func (e *Error) Error() string {
	s := fmt.Sprintf("kernel: xfrm %s: %s (%v)", e.Op, unix.ErrnoName(e.Errno), e.Errno)
	if e.Message != "" {
		s += fmt.Sprintf(": kernel says %q", e.Message)
	}
	return s
}

// Unwrap returns the errno and the matching sentinel.
func (e *Error) Unwrap() []error {
	errs := []error{e.Errno}
	switch e.Errno {
	case unix.ESRCH, unix.ENOENT:
		errs = append(errs, ErrNoSA)
	case unix.EEXIST:
		errs = append(errs, ErrExists)
	case unix.EPROTONOSUPPORT, unix.ENOSYS, unix.EAFNOSUPPORT:
		errs = append(errs, ErrNotSupported)
	}
	return errs
}

// Netlink constants of <linux/netlink.h> that x/sys/unix spells differently
// or lacks.
const (
	nlmsgError   = 0x2
	nlmsgDone    = 0x3
	nlmFCapped   = 0x100 // the error reply carries only the request's header
	nlmFAckTLVs  = 0x200 // extended acknowledgement attributes follow
	nlmsgerrMsg  = 1     // NLMSGERR_ATTR_MSG
	flagsRequest = unix.NLM_F_REQUEST
	flagsAck     = unix.NLM_F_REQUEST | unix.NLM_F_ACK
)

// build is how a request body is written; it returns false on misuse that
// the caller has already reported.
type build func(m *msgBuilder)

// do sends one request and reads the replies up to its acknowledgement or
// its one answer, calling onReply for each data message (which must not keep
// the bytes). The request and reply buffers are wiped before do returns.
func (x *XFRM) do(op string, typ, flags uint16, fill build, onReply func(typ uint16, data []byte) error) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.fd < 0 {
		return fmt.Errorf("kernel: xfrm %s: connection closed", op)
	}
	x.seq++
	seq := x.seq
	x.req.start(typ, flags, seq, x.pid)
	fill(x.req)
	msg, ok := x.req.finish()
	if !ok {
		x.req.wipe()
		return fmt.Errorf("kernel: xfrm %s: request larger than %d bytes", op, maxMessage)
	}
	err := unix.Sendto(x.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	x.req.wipe()
	if err != nil {
		return fmt.Errorf("kernel: xfrm %s: send: %w", op, err)
	}
	defer clear(x.resp)
	for {
		n, _, err := unix.Recvfrom(x.fd, x.resp, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("kernel: xfrm %s: receive: %w", op, err)
		}
		done, err := x.parse(op, x.resp[:n], seq, flags&unix.NLM_F_ACK != 0, onReply)
		if done || err != nil {
			return err
		}
	}
}

// parse handles one datagram of replies. It reports done when the request's
// acknowledgement, error or answer has been seen.
func (x *XFRM) parse(op string, b []byte, seq uint32, wantAck bool, onReply func(uint16, []byte) error) (bool, error) {
	done := false
	for len(b) >= nlmsgHeaderLen {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < nlmsgHeaderLen || l > len(b) {
			return true, fmt.Errorf("kernel: xfrm %s: malformed reply", op)
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		flags := binary.NativeEndian.Uint16(b[6:])
		mseq := binary.NativeEndian.Uint32(b[8:])
		data := b[nlmsgHeaderLen:l]
		b = b[min(align4(l), len(b)):]
		if mseq != seq {
			continue // a late reply to an earlier request
		}
		switch typ {
		case nlmsgError:
			return true, parseError(op, data, flags)
		case nlmsgDone:
			return true, nil
		}
		if onReply != nil {
			if err := onReply(typ, data); err != nil {
				return true, err
			}
		}
		if !wantAck && flags&unix.NLM_F_MULTI == 0 {
			done = true
		}
	}
	return done, nil
}

// parseError decodes struct nlmsgerr: the negative errno, the request's
// header (NLM_F_CAPPED) or whole request, then extended acknowledgement
// attributes (NLM_F_ACK_TLVS).
func parseError(op string, data []byte, flags uint16) error {
	if len(data) < 4+nlmsgHeaderLen {
		return fmt.Errorf("kernel: xfrm %s: short error reply", op)
	}
	errno := -int32(binary.NativeEndian.Uint32(data))
	if errno == 0 {
		return nil
	}
	e := &Error{Op: op, Errno: unix.Errno(errno)}
	off := 4 + nlmsgHeaderLen
	if flags&nlmFCapped == 0 {
		off = 4 + int(binary.NativeEndian.Uint32(data[4:]))
	}
	if flags&nlmFAckTLVs != 0 && off >= 4+nlmsgHeaderLen && off <= len(data) {
		attrs(data[off:], func(typ uint16, val []byte) {
			if typ == nlmsgerrMsg {
				e.Message = cString(val)
			}
		})
	}
	return e
}

// cString returns the bytes of b up to its first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
