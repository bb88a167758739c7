package iketest

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
)

// Receiver is what a transport delivers datagrams to (an ike.Daemon).
type Receiver interface {
	Receive(local, remote netip.AddrPort, msg []byte)
}

// Wire connects daemons in memory: a datagram sent from local to remote is
// delivered, in order, by a goroutine per receiver (as a socket's read
// loop would), optionally through a filter that may drop or alter it.
type Wire struct {
	mu       sync.Mutex
	peers    map[netip.Addr]chan datagram
	others   chan datagram // AttachOthers: for addresses no one attached
	filter   func(local, remote netip.AddrPort, msg []byte) []byte
	nat      map[netip.AddrPort]netip.AddrPort // inside -> outside
	clk      clock.Clock                       // with delay: the datagrams' time in flight
	delay    time.Duration                     // guarded by mu
	queued   atomic.Int64                      // datagrams delivered and not yet fully received
	received atomic.Uint64                     // Receive calls returned
}

type datagram struct {
	local, remote netip.AddrPort
	msg           []byte
}

// NewWire returns an empty wire.
func NewWire() *Wire { return &Wire{peers: map[netip.Addr]chan datagram{}} }

// Attach registers the receiver for an address.
func (w *Wire) Attach(a netip.Addr, r Receiver) {
	ch := make(chan datagram, 1024)
	w.mu.Lock()
	w.peers[a] = ch
	w.mu.Unlock()
	go w.serve(ch, r)
}

// serve hands the datagrams queued on ch to r, in order.
func (w *Wire) serve(ch chan datagram, r Receiver) {
	for d := range ch {
		r.Receive(d.remote, d.local, d.msg)
		w.received.Add(1)
		w.queued.Add(-1)
	}
}

// AttachOthers registers the receiver for every address no receiver is
// attached to: one daemon with thousands of addresses (a scale benchmark)
// without a queue and a goroutine for each.
func (w *Wire) AttachOthers(r Receiver) {
	ch := make(chan datagram, 1024)
	w.mu.Lock()
	w.others = ch
	w.mu.Unlock()
	go w.serve(ch, r)
}

// Idle reports whether every datagram sent has been received: the
// receivers' Receive calls have returned.
func (w *Wire) Idle() bool { return w.queued.Load() == 0 }

// Received returns how many datagrams were received: Receive calls that
// returned.
func (w *Wire) Received() uint64 { return w.received.Load() }

// Close stops delivering.
func (w *Wire) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for a, ch := range w.peers {
		close(ch)
		delete(w.peers, a)
	}
	if w.others != nil {
		close(w.others)
		w.others = nil
	}
}

// SetDelay makes every datagram arrive d after it is sent, on clock c
// (a fake clock in tests of timer logic), instead of at once: senders
// finish what they do before their peer hears of it, as they would on a
// real network.
func (w *Wire) SetDelay(c clock.Clock, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.clk, w.delay = c, d
}

// SetFilter installs a filter; it returns the datagram to deliver or nil
// to drop it.
func (w *Wire) SetFilter(f func(local, remote netip.AddrPort, msg []byte) []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.filter = f
}

// NAT puts the endpoint inside behind a NAT mapping to outside (another
// address or port): datagrams it sends seem to come from outside, and
// datagrams sent to outside reach it. Mapping inside again replaces the
// mapping (a NAT rebinding).
func (w *Wire) NAT(inside, outside netip.AddrPort) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.nat == nil {
		w.nat = map[netip.AddrPort]netip.AddrPort{}
	}
	w.nat[inside] = outside
}

// translate applies the NAT mappings to a datagram. w.mu must be held.
func (w *Wire) translate(local, remote netip.AddrPort) (netip.AddrPort, netip.AddrPort, netip.Addr) {
	to := remote.Addr()
	if out, ok := w.nat[local]; ok {
		local = out
	}
	for in, out := range w.nat {
		if out == remote {
			remote, to = in, in.Addr()
		}
	}
	return local, remote, to
}

// Send implements ike.Transport.
func (w *Wire) Send(local, remote netip.AddrPort, msg []byte) error {
	w.mu.Lock()
	f := w.filter
	w.mu.Unlock()
	msg = append([]byte(nil), msg...)
	if f != nil {
		if msg = f(local, remote, msg); msg == nil {
			return nil
		}
	}
	w.mu.Lock()
	local, remote, to := w.translate(local, remote)
	c, d := w.clk, w.delay
	w.mu.Unlock()
	if c != nil {
		c.AfterFunc(d, func() { w.deliver(to, local, remote, msg) })
		return nil
	}
	w.deliver(to, local, remote, msg)
	return nil
}

// deliver queues a datagram for the receiver at to.
func (w *Wire) deliver(to netip.Addr, local, remote netip.AddrPort, msg []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := w.peers[to]
	if ch == nil {
		ch = w.others
	}
	if ch != nil {
		w.queued.Add(1) // before it can be received
		select {
		case ch <- datagram{local, remote, msg}:
		default: // a full queue drops, as a socket buffer would
			w.queued.Add(-1)
		}
	}
}

var _ ike.Transport = (*Wire)(nil)
