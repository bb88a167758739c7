package cluster

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
)

// TestFenceDeadline, on the fake clock: the deadline is the send time of
// the last renewal plus the TTL minus the margin; it fires once; a
// renewal that arrives after it is refused; only start rearms it.
func TestFenceDeadline(t *testing.T) {
	clk := clocktest.New(time.Unix(1000, 0))
	var fired atomic.Int32
	var firedAt time.Time
	f := newFence(clk, 500*time.Millisecond, func() { fired.Add(1); firedAt = clk.Now() })
	if f.valid() {
		t.Fatal("valid before any lease")
	}
	t0 := clk.Now()
	f.start(t0, 2*time.Second)
	if !f.valid() || !f.deadline().Equal(t0.Add(1500*time.Millisecond)) {
		t.Fatalf("deadline %v", f.deadline())
	}
	// A renewal sent at +0.5 s whose answer came back at +1.2 s counts
	// from +0.5 s: the server may have renewed it as early as that.
	clk.Advance(1200 * time.Millisecond)
	if !f.renewed(t0.Add(500*time.Millisecond), 2*time.Second) || !f.deadline().Equal(t0.Add(2*time.Second)) {
		t.Fatalf("deadline after renewal %v", f.deadline())
	}
	// An older renewal answered late never moves it back.
	f.renewed(t0.Add(100*time.Millisecond), 2*time.Second)
	if !f.deadline().Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("moved back to %v", f.deadline())
	}
	clk.Advance(799 * time.Millisecond)
	if fired.Load() != 0 || !f.valid() {
		t.Fatal("fired early")
	}
	clk.Advance(time.Millisecond)
	if fired.Load() != 1 || f.valid() || !firedAt.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("fired %d at %v, want once at %v", fired.Load(), firedAt, t0.Add(2*time.Second))
	}
	if f.renewed(clk.Now(), 2*time.Second) || f.valid() {
		t.Fatal("a renewal after the deadline revived the fence")
	}
	clk.Advance(10 * time.Second)
	if fired.Load() != 1 {
		t.Fatalf("fired %d times", fired.Load())
	}
	f.start(clk.Now(), 2*time.Second)
	if !f.valid() {
		t.Fatal("start did not rearm")
	}
	f.stop()
	clk.Advance(5 * time.Second)
	if fired.Load() != 1 || f.valid() {
		t.Fatal("a stopped fence fired or stayed valid")
	}
}
