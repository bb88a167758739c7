package iketest

import (
	"net/netip"
	"sync"

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
	mu     sync.Mutex
	peers  map[netip.Addr]chan datagram
	filter func(local, remote netip.AddrPort, msg []byte) []byte
	nat    map[netip.AddrPort]netip.AddrPort // inside -> outside
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
	go func() {
		for d := range ch {
			r.Receive(d.remote, d.local, d.msg)
		}
	}()
}

// Close stops delivering.
func (w *Wire) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for a, ch := range w.peers {
		close(ch)
		delete(w.peers, a)
	}
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
	defer w.mu.Unlock()
	local, remote, to := w.translate(local, remote)
	if ch := w.peers[to]; ch != nil {
		select {
		case ch <- datagram{local, remote, msg}:
		default: // a full queue drops, as a socket buffer would
		}
	}
	return nil
}

var _ ike.Transport = (*Wire)(nil)
