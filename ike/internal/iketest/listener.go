package iketest

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/ismgw/ism/ike"
)

// Event is one recorded Listener call.
type Event struct {
	Kind     string // "up", "down", "failed", "dead", "failover"
	Tunnel   string
	Peer     netip.AddrPort // "up": the peer; "dead": the dead peer, port 0
	Reason   string
	From, To netip.Addr // "failover"
	At       time.Time  // when recorded; "dead": when detected
}

func (e Event) String() string {
	if e.Kind == "failover" {
		return fmt.Sprintf("%s %s %v->%v %s", e.Kind, e.Tunnel, e.From, e.To, e.Reason)
	}
	return fmt.Sprintf("%s %s %v %s", e.Kind, e.Tunnel, e.Peer, e.Reason)
}

// Listener records tunnel events and passes them on a channel. It is safe
// for concurrent use and never blocks.
type Listener struct {
	mu     sync.Mutex
	events []Event
	ch     chan Event
}

// NewListener returns a listener whose channel holds up to 256 events.
func NewListener() *Listener { return &Listener{ch: make(chan Event, 256)} }

var _ ike.Listener = (*Listener)(nil)

func (l *Listener) add(e Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	select {
	case l.ch <- e:
	default:
	}
}

// TunnelUp records an up event.
func (l *Listener) TunnelUp(tunnel string, peer netip.AddrPort) {
	l.add(Event{Kind: "up", Tunnel: tunnel, Peer: peer})
}

// TunnelDown records a down event.
func (l *Listener) TunnelDown(tunnel, reason string) {
	l.add(Event{Kind: "down", Tunnel: tunnel, Reason: reason})
}

// NegotiationFailed records a failure.
func (l *Listener) NegotiationFailed(tunnel, reason string) {
	l.add(Event{Kind: "failed", Tunnel: tunnel, Reason: reason})
}

// PeerDead records a dead peer.
func (l *Listener) PeerDead(tunnel string, peer netip.Addr, detectedAt time.Time) {
	l.add(Event{Kind: "dead", Tunnel: tunnel, Peer: netip.AddrPortFrom(peer, 0), At: detectedAt})
}

// Failover records a switch of destination.
func (l *Listener) Failover(tunnel string, from, to netip.Addr, reason string) {
	l.add(Event{Kind: "failover", Tunnel: tunnel, From: from, To: to, Reason: reason})
}

// Events returns the events so far.
func (l *Listener) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// C returns the event channel.
func (l *Listener) C() <-chan Event { return l.ch }
