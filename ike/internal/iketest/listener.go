package iketest

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/ismgw/ism/ike"
)

// Event is one recorded Listener call.
type Event struct {
	Kind   string // "up", "down", "failed"
	Tunnel string
	Peer   netip.AddrPort
	Reason string
}

func (e Event) String() string {
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

// Events returns the events so far.
func (l *Listener) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// C returns the event channel.
func (l *Listener) C() <-chan Event { return l.ch }
