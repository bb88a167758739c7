package v2

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
)

// TestSchedule: the lazy timers run at their deadlines, earliest first,
// off one clock timer armed for the earliest; a stopped or re-armed one
// runs as it was last told; close stops them all.
func TestSchedule(t *testing.T) {
	clk := clocktest.New(t0)
	s := newSchedule(clk)
	var mu sync.Mutex
	var ran []string
	at := func(name string) func() {
		return func() {
			mu.Lock()
			defer mu.Unlock()
			ran = append(ran, name+"@"+clk.Now().Sub(t0).String())
		}
	}
	var a, b, c, d lazyTimer
	s.arm(&a, 3*time.Second, at("a"))
	s.arm(&b, time.Second, at("b"))
	s.arm(&c, 2*time.Second, at("c"))
	s.arm(&d, 5*time.Second, at("d"))
	if n := clk.Pending(); n != 1 {
		t.Errorf("%d clock timers for four lazy ones", n)
	}
	s.arm(&c, 4*time.Second, at("c2")) // later: re-armed
	if !s.stop(&a) || s.stop(&a) {
		t.Error("stop: a was pending once")
	}
	s.arm(&d, 500*time.Millisecond, at("d2")) // earlier than the clock timer
	clk.Advance(10 * time.Second)
	want := []string{"d2@500ms", "b@1s", "c2@4s"}
	if !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
	if n := clk.Pending(); n != 0 {
		t.Errorf("%d clock timers left with no lazy one", n)
	}
	// A function re-arms its own timer, as the lifetimes do.
	ran = nil
	s.arm(&a, time.Second, func() { s.arm(&a, time.Second, at("again")) })
	clk.Advance(3 * time.Second)
	if want := []string{"again@12s"}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
	s.arm(&b, time.Second, at("closed"))
	s.close()
	s.arm(&c, time.Second, at("after close"))
	clk.Advance(time.Minute)
	if n := clk.Pending(); len(ran) != 1 || n != 0 || b.pos != 0 || c.pos != 0 {
		t.Errorf("after close: ran %v, %d clock timers", ran, n)
	}
}
