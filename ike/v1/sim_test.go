package v1

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
)

// sim is the world of a test of timer logic: daemons on an in-memory wire
// and a fake clock that moves only when the test moves it, and only while
// nothing runs (no exchange goroutine busy, no datagram in flight). An
// hour of lifetimes, retransmissions and DPD inquiries then takes
// milliseconds. The CPU is infinitely fast and the network is not
// (simLatency): a daemon has always finished what it does when its peer
// answers, and a retransmission happens only when a message is really
// lost.
type sim struct {
	*iketest.Wire
	clk *clocktest.Fake

	mu      sync.Mutex
	daemons []*Daemon
}

// simLatency is how long a datagram takes on a sim's wire.
const simLatency = time.Millisecond

// simStart is when every sim's clock starts.
var simStart = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// newSim returns a sim whose wire is closed when the test ends.
func newSim(t testing.TB) *sim {
	s := &sim{Wire: iketest.NewWire(), clk: clocktest.New(simStart)}
	s.SetDelay(s.clk, simLatency)
	t.Cleanup(s.Close)
	return s
}

// config returns c on the sim's clock.
func (s *sim) config(c ike.Config) ike.Config {
	c.Clock = s.clk
	return c
}

// Attach connects d to the wire at a and makes the sim wait for it.
func (s *sim) Attach(a netip.Addr, d *Daemon) {
	s.mu.Lock()
	s.daemons = append(s.daemons, d)
	s.mu.Unlock()
	s.Wire.Attach(a, d)
}

// quiet reports whether nothing runs. Every way one daemon wakes another
// goes through the wire, so daemons found quiet one after the other, with
// no datagram in flight before and after and none received in between,
// are quiet together.
func (s *sim) quiet() bool {
	received := s.Received()
	if !s.Idle() {
		return false
	}
	s.mu.Lock()
	ds := append([]*Daemon(nil), s.daemons...)
	s.mu.Unlock()
	for _, d := range ds {
		if !d.quiet() {
			return false
		}
	}
	return s.Idle() && s.Received() == received
}

// settle waits, in real time, until nothing runs.
func (s *sim) settle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !s.quiet() {
		if time.Now().After(deadline) {
			t.Fatal("the daemons did not settle within a minute of real time")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// step settles, then moves the clock to the next timer due by end and
// runs it; it reports false when none is.
func (s *sim) step(t testing.TB, end time.Time) bool {
	t.Helper()
	s.settle(t)
	next, ok := s.clk.NextDeadline()
	if !ok || next.After(end) {
		return false
	}
	s.clk.Advance(next.Sub(s.clk.Now()))
	return true
}

// sleep lets d of fake time pass, running the timers that fall due.
func (s *sim) sleep(t testing.TB, d time.Duration) {
	t.Helper()
	end := s.clk.Now().Add(d)
	for s.step(t, end) {
	}
	s.clk.Advance(end.Sub(s.clk.Now()))
	s.settle(t)
}

// waitUntil lets fake time pass until cond holds, at most within.
func (s *sim) waitUntil(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	end := s.clk.Now().Add(within)
	for {
		s.settle(t)
		if cond() {
			return
		}
		if !s.step(t, end) {
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}

// waitFor lets fake time pass until the listener has an event f accepts,
// at most within, and returns the first one.
func (s *sim) waitFor(t testing.TB, l *iketest.Listener, within time.Duration, what string, f func(iketest.Event) bool) iketest.Event {
	t.Helper()
	end := s.clk.Now().Add(within)
	for {
		s.settle(t)
		for _, e := range l.Events() {
			if f(e) {
				return e
			}
		}
		if !s.step(t, end) {
			t.Fatalf("no %s within %v; events: %v", what, within, l.Events())
		}
	}
}

// waitEvent waits for an event of kind on tunnel, as waitFor.
func (s *sim) waitEvent(t testing.TB, l *iketest.Listener, kind, tunnel string, within time.Duration) iketest.Event {
	t.Helper()
	return s.waitFor(t, l, within, kind+" event for "+tunnel, func(e iketest.Event) bool { return e.Kind == kind && e.Tunnel == tunnel })
}

// after runs f once d of fake time has passed: a delayed delivery.
func (s *sim) after(d time.Duration, f func()) { s.clk.AfterFunc(d, f) }
