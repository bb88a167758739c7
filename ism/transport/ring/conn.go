package ring

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Config configures a Conn.
type Config struct {
	// Interface is the transport interface, in the caller's network
	// namespace.
	Interface string
	// Local are the addresses whose ESP and AH the ring takes; nil means
	// every address on the interface when Open runs.
	Local []netip.Addr
	// Fallback sends what the ring cannot: packets to a next hop the
	// kernel has not resolved, packets over the MTU (the kernel fragments
	// them), packets routed out of another interface. Nil means Sockets
	// of the Conn's own.
	Fallback Sender
}

// Sender sends whole IP packets. Sockets and Conn are Senders.
type Sender interface {
	Send(pkts [][]byte) (int, error)
}

// ReceiveFunc receives a batch of whole IP packets (the Ethernet header
// stripped) into bufs, setting their lengths in sizes, and returns how many
// it received; len(sizes) >= len(bufs). It blocks until at least one packet
// is there, and returns net.ErrClosed once the Conn is closed. A packet
// longer than its buffer is cut to the buffer's length.
type ReceiveFunc func(bufs [][]byte, sizes []int) (int, error)

// Conn is a raw ESP and AH transport on one Ethernet interface with AF_XDP
// rings: sends are written into the ring's frames and handed to the kernel
// with one system call per batch; receives are taken by an XDP program on
// the interface and read from the ring, with no system call while packets
// keep coming. Only unfragmented ESP and AH for the local addresses are
// taken: fragments, ICMP errors and everything else stay on the kernel's
// path. A Conn is safe for concurrent use; each ReceiveFunc is used by one
// goroutine at a time.
type Conn struct {
	ifname  string
	ifindex int
	src     [6]byte
	steer   *steer
	queues  []*queue
	hops    *nextHops
	fb      Sender
	ownFB   *Sockets
	closed  atomic.Bool
	sent    atomic.Uint64 // through the ring
	slow    atomic.Uint64 // through the fallback
	rcvd    atomic.Uint64

	txMu   sync.Mutex // the send ring of queue 0, and slowBuf
	slowBy [][]byte
}

// queue is one receive queue's socket.
type queue struct {
	x  *xsk
	f  *os.File // x.fd in the runtime's poller, for blocking receives
	rc interface {
		Read(func(fd uintptr) bool) error
	}
	mu    sync.Mutex
	addrs []uint64 // frames to give back, scratch
}

// Open sets up the rings on the interface: an AF_XDP socket per receive
// queue, the XDP program that steers ESP and AH to them, and the
// neighbour resolver. It runs in the caller's network namespace. Its
// errors are *ProbeError.
func Open(c Config) (conn *Conn, err error) {
	fail := func(e error) (*Conn, error) { return nil, &ProbeError{Interface: c.Interface, Err: e} }
	ifi, err := checkInterface(c.Interface)
	if err != nil {
		return fail(err)
	}
	local := c.Local
	if local == nil {
		if local, err = addresses(ifi); err != nil {
			return fail(err)
		}
	}
	cn := &Conn{ifname: ifi.Name, ifindex: ifi.Index, fb: c.Fallback}
	copy(cn.src[:], ifi.HardwareAddr)
	defer func() {
		if err != nil {
			cn.Close()
		}
	}()
	nq := rxQueues(ifi.Name)
	if cn.steer, err = newSteer(ifi.Index, nq, local); err != nil {
		return fail(classify(err, ErrNoBPF))
	}
	for q := range nq {
		x, err := newXSK(ifi.Index, q)
		if err != nil {
			return fail(classify(err, ErrXDPSocket))
		}
		qu := &queue{x: x, addrs: make([]uint64, 0, ringSize)}
		cn.queues = append(cn.queues, qu)
		if err := unix.SetNonblock(x.fd, true); err != nil {
			return fail(classify(err, ErrXDPSocket))
		}
		qu.f = os.NewFile(uintptr(x.fd), fmt.Sprintf("xsk:%s:%d", ifi.Name, q))
		rc, err := qu.f.SyscallConn()
		if err != nil {
			return fail(classify(err, ErrXDPSocket))
		}
		qu.rc = rc
		if err := cn.steer.addSocket(q, x.fd); err != nil {
			return fail(classify(err, ErrNoBPF))
		}
	}
	if cn.hops, err = newNextHops(ifi.Index, ifi.MTU); err != nil {
		return fail(fmt.Errorf("rtnetlink: %w", err))
	}
	if cn.fb == nil {
		if cn.ownFB, err = OpenSockets(); err != nil {
			return fail(classify(err, ErrPermission))
		}
		cn.fb = cn.ownFB
	}
	return cn, nil
}

// addresses returns the interface's addresses.
func addresses(ifi *net.Interface) ([]netip.Addr, error) {
	as, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}

// AddLocal makes the ring take the ESP and AH for a too.
func (c *Conn) AddLocal(a netip.Addr) error {
	if err := c.steer.local.Put(a.Unmap().As16(), uint8(1)); err != nil {
		return fmt.Errorf("ring: local address %s: %w", a, err)
	}
	return nil
}

// RemoveLocal leaves the ESP and AH for a to the kernel again.
func (c *Conn) RemoveLocal(a netip.Addr) error {
	if err := c.steer.local.Delete(a.Unmap().As16()); err != nil {
		return fmt.Errorf("ring: local address %s: %w", a, err)
	}
	return nil
}

// Interface returns the name of the interface the ring runs on.
func (c *Conn) Interface() string { return c.ifname }

// Mode says how the XDP program runs: "native" (in the driver) or
// "generic" (after the kernel has made a socket buffer).
func (c *Conn) Mode() string { return c.steer.mode }

// BatchSize is the most packets a ReceiveFunc returns at once, and the
// batch Send is built for.
func (c *Conn) BatchSize() int { return 128 }

// ReceiveFuncs returns one receive function per receive queue of the
// interface.
func (c *Conn) ReceiveFuncs() []ReceiveFunc {
	fns := make([]ReceiveFunc, len(c.queues))
	for i, q := range c.queues {
		fns[i] = func(bufs [][]byte, sizes []int) (int, error) { return c.receive(q, bufs, sizes) }
	}
	return fns
}

func (c *Conn) receive(q *queue, bufs [][]byte, sizes []int) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	// Close unmaps the rings under q.mu once closed is set: checked
	// here, they stay mapped until this receive returns.
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	x := q.x
	for x.rx.avail() == 0 {
		if c.closed.Load() {
			return 0, net.ErrClosed
		}
		// The poller waits for the socket to be readable: the rx ring
		// has descriptors.
		err := q.rc.Read(func(uintptr) bool { return x.rx.avail() > 0 || c.closed.Load() })
		if err != nil {
			if c.closed.Load() {
				return 0, net.ErrClosed
			}
			return 0, err
		}
	}
	n := min(int(x.rx.avail()), len(bufs))
	q.addrs = q.addrs[:0]
	for i := range n {
		d := x.rx.xdpDesc(x.rx.cachedCons)
		x.rx.cachedCons++
		frame := x.umem[d.Addr : d.Addr+uint64(d.Len)]
		sizes[i] = copy(bufs[i], frame[min(ethLen, len(frame)):])
		q.addrs = append(q.addrs, d.Addr&^(FrameSize-1))
	}
	x.rx.release()
	x.refill(q.addrs)
	c.rcvd.Add(uint64(n))
	return n, nil
}

// Stats counts a Conn's traffic.
type Stats struct {
	RingSent, FallbackSent, Received uint64
	// Kernel counters of the AF_XDP sockets: packets dropped for want of
	// room in the receive ring or of frames in the fill ring.
	RxDropped, RxRingFull, RxFillEmpty uint64
}

// Stats returns the Conn's counters.
func (c *Conn) Stats() Stats {
	s := Stats{RingSent: c.sent.Load(), FallbackSent: c.slow.Load(), Received: c.rcvd.Load()}
	c.txMu.Lock() // Close closes the sockets under it
	defer c.txMu.Unlock()
	for _, q := range c.queues {
		if !c.closed.Load() {
			k := q.x.stats()
			s.RxDropped += k.Rx_dropped
			s.RxRingFull += k.Rx_ring_full
			s.RxFillEmpty += k.Rx_fill_ring_empty_descs
		}
	}
	return s
}

// Close detaches the XDP program, so that the kernel takes ESP and AH
// again, and closes the sockets; blocked receives return net.ErrClosed.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.steer != nil {
		c.steer.close()
	}
	c.txMu.Lock() // no Send in flight from here on
	defer c.txMu.Unlock()
	for _, q := range c.queues {
		if q.f != nil {
			_ = q.f.Close() // wakes a blocked receive
		}
	}
	for _, q := range c.queues {
		q.mu.Lock()
		if q.f != nil {
			q.x.fd = -1 // closed with the file
		}
		q.x.close()
		q.mu.Unlock()
	}
	var err error
	if c.hops != nil {
		err = c.hops.close()
	}
	if c.ownFB != nil {
		err = errors.Join(err, c.ownFB.Close())
	}
	return err
}
