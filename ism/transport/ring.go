package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/ismgw/ism/ism/transport/ring"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/offload"
)

// RawMode is how raw ESP and AH leave and arrive.
type RawMode string

// Raw modes.
const (
	// RawAuto uses an AF_XDP ring on the transport interface where its
	// probe succeeds, raw sockets elsewhere.
	RawAuto RawMode = "auto"
	// RawRing asks for the ring: where it cannot run, raw sockets carry
	// the traffic, the fallback is counted (RingUnavailable) and logged.
	RawRing RawMode = "ring"
	// RawSockets uses raw IP sockets only.
	RawSockets RawMode = "socket"
)

// ringKey names a transport interface: a VR and an interface index in it.
type ringKey struct {
	vr      *vr.VR
	ifindex uint32
}

// rawRing is the AF_XDP ring (ring.Conn) on one transport interface,
// shared by the endpoints of its VR whose raw ESP and AH leave by it: its
// XDP program takes the ESP and AH for their addresses. Its fields are
// guarded by Endpoints.mu.
type rawRing struct {
	key    ringKey
	conn   *ring.Conn
	refs   int                // ring sockets using it
	locals map[netip.Addr]int // addresses taken, by ring sockets
}

// SetRawMode sets how raw ESP and AH travel for the sockets asked for from
// now on, and forgets which interfaces could not run a ring.
func (e *Endpoints) SetRawMode(m RawMode) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.raw = m
	clear(e.noRing)
}

// RingUnavailable counts the outbound SAs that asked for a ring (RawRing)
// and were put on raw sockets.
func (e *Endpoints) RingUnavailable() uint64 { return e.ringUnavailable.Load() }

// RawSocket returns the socket raw ESP or AH (kind) to dst leaves by. It
// opens the endpoint's raw socket, which also takes what arrives by the
// kernel (fragments, and everything where no ring runs), and, as the raw
// mode allows, the AF_XDP ring on the interface the route to dst leaves by
// (a ring socket). how says which, for show: "af_xdp ring on eth0 (native
// XDP)" or "raw socket (why not the ring)".
func (ep *Endpoint) RawSocket(kind Kind, dst netip.Addr) (s *Socket, how string, err error) {
	if s, err = ep.Socket(kind, 0); err != nil {
		return nil, "", err
	}
	e := ep.set
	e.mu.Lock()
	mode := e.raw
	e.mu.Unlock()
	if mode == RawSockets {
		return s, "raw socket (dataplane raw-transport socket)", nil
	}
	p, err := ep.key.vr.Netlink.Lookup(dst)
	if err != nil {
		return s, fmt.Sprintf("raw socket (no route to %s yet)", dst), nil
	}
	rs, err := ep.ringSocket(kind, p.Ifindex)
	if err != nil {
		if mode == RawRing {
			e.ringUnavailable.Add(1)
			e.log.Warn("raw ESP and AH on raw sockets: the ring is not available", "endpoint", ep.key.local.String(), "err", err)
		}
		return s, fmt.Sprintf("raw socket (%v)", err), nil
	}
	return rs, fmt.Sprintf("af_xdp ring on %s (%s XDP)", rs.ring.conn.Interface(), rs.ring.conn.Mode()), nil
}

// ringSocket returns the endpoint's ring socket of a kind on an interface,
// opening the ring on first use.
func (ep *Endpoint) ringSocket(kind Kind, ifindex uint32) (*Socket, error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	k := sockKey{kind: kind, ifindex: ifindex}
	if s, ok := ep.socks[k]; ok {
		return s, nil
	}
	r, err := ep.set.takeRing(ringKey{ep.key.vr, ifindex}, ep.key.local)
	if err != nil {
		return nil, err
	}
	s := &Socket{kind: kind, local: netip.AddrPortFrom(ep.key.local, 0), ring: r}
	ep.socks[k] = s
	return s, nil
}

// errClosed: the endpoints are closed.
var errClosed = errors.New("transport: endpoints closed")

// takeRing returns the ring on an interface with a reference taken and
// local's ESP and AH steered to it, opening it (and starting its receive
// sides) on first use. A probe that failed is not tried again until the
// raw mode is set.
func (e *Endpoints) takeRing(k ringKey, local netip.Addr) (*rawRing, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errClosed
	}
	r := e.rings[k]
	if r == nil {
		if err := e.noRing[k]; err != nil {
			return nil, err
		}
		var c *ring.Conn
		err := k.vr.NS.Do(func() error {
			ifi, err := net.InterfaceByIndex(int(k.ifindex))
			if err != nil {
				return &ring.ProbeError{Interface: fmt.Sprint(k.ifindex), Err: ring.ErrNoInterface}
			}
			c, err = ring.Open(ring.Config{Interface: ifi.Name, Local: []netip.Addr{}})
			return err
		})
		if err != nil {
			e.noRing[k] = err
			return nil, err
		}
		r = &rawRing{key: k, conn: c, locals: map[netip.Addr]int{}}
		e.rings[k] = r
		for _, fn := range c.ReceiveFuncs() {
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				e.h.Serve(&ringReader{fn: fn, name: c.Interface()})
			}()
		}
	}
	if r.locals[local] == 0 {
		if err := r.conn.AddLocal(local); err != nil {
			if r.refs == 0 {
				e.closeRing(r)
			}
			return nil, err
		}
	}
	r.locals[local]++
	r.refs++
	return r, nil
}

// releaseRing gives back a reference takeRing took for local; the last
// closes the ring, which detaches its XDP program.
func (e *Endpoints) releaseRing(r *rawRing, local netip.Addr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.locals[local]--; r.locals[local] <= 0 {
		delete(r.locals, local)
		_ = r.conn.RemoveLocal(local)
	}
	if r.refs--; r.refs == 0 {
		e.closeRing(r)
	}
}

// closeRing closes a ring; its receive sides end. e.mu is held.
func (e *Endpoints) closeRing(r *rawRing) {
	if e.rings[r.key] == r {
		delete(e.rings, r.key)
	}
	_ = r.conn.Close()
}

// RingStatus is what show says of a ring.
type RingStatus struct {
	VR, Interface, Mode string
	ring.Stats
}

func (s RingStatus) String() string {
	return fmt.Sprintf("af_xdp ring on %s in VR %s (%s XDP): %d packets sent through the ring, %d through raw sockets, %d received, %d dropped by the kernel for want of room",
		s.Interface, s.VR, s.Mode, s.RingSent, s.FallbackSent, s.Received, s.RxDropped+s.RxRingFull+s.RxFillEmpty)
}

// Rings returns the rings open, by VR and interface.
func (e *Endpoints) Rings() []RingStatus {
	e.mu.Lock()
	rs := make([]*rawRing, 0, len(e.rings))
	for _, r := range e.rings {
		rs = append(rs, r)
	}
	e.mu.Unlock()
	out := make([]RingStatus, 0, len(rs))
	for _, r := range rs {
		out = append(out, RingStatus{VR: r.key.vr.Name, Interface: r.conn.Interface(), Mode: r.conn.Mode(), Stats: r.conn.Stats()})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].VR < out[j].VR || out[i].VR == out[j].VR && out[i].Interface < out[j].Interface
	})
	return out
}

// ringReader reads one receive queue of a ring: whole IP packets, IPv4 and
// IPv6.
type ringReader struct {
	fn    ring.ReceiveFunc
	name  string
	bufs  [offload.BurstSize][]byte
	sizes [offload.BurstSize]int
}

func (r *ringReader) BufferSize() int { return offload.BufferSize }
func (r *ringReader) ESP() bool       { return true }
func (r *ringReader) String() string  { return "af_xdp ring on " + r.name }

func (r *ringReader) Read(pkts []*offload.Packet) (int, error) {
	n := min(len(pkts), len(r.bufs))
	for i := range n {
		r.bufs[i] = readBuf(pkts[i])
	}
	k, err := r.fn(r.bufs[:n], r.sizes[:n])
	if err != nil {
		return 0, net.ErrClosed
	}
	for i := range k {
		pkts[i].Reset(r.sizes[i])
	}
	return k, nil
}
