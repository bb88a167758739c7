package clocktest

import (
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestAdvanceOrder: due timers run earliest first, each seeing its own
// deadline as Now; later ones wait; a stopped one never runs.
func TestAdvanceOrder(t *testing.T) {
	f := New(epoch)
	var got []time.Duration
	rec := func() { got = append(got, f.Now().Sub(epoch)) }
	f.AfterFunc(3*time.Second, rec)
	f.AfterFunc(time.Second, rec)
	stopped := f.AfterFunc(2*time.Second, rec)
	f.AfterFunc(10*time.Second, rec)
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	f.Advance(5 * time.Second)
	if len(got) != 2 || got[0] != time.Second || got[1] != 3*time.Second {
		t.Fatalf("ran at %v, want [1s 3s]", got)
	}
	if f.Now() != epoch.Add(5*time.Second) {
		t.Fatalf("now %v", f.Now())
	}
	if f.Pending() != 1 {
		t.Fatalf("%d pending, want 1", f.Pending())
	}
}

// TestRescheduleWithinAdvance: a timer a callback arms inside the span
// runs in the same Advance; Reset moves a timer instead of copying it.
func TestRescheduleWithinAdvance(t *testing.T) {
	f := New(epoch)
	n := 0
	var tick func()
	tick = func() {
		n++
		f.AfterFunc(time.Second, tick)
	}
	f.AfterFunc(time.Second, tick)
	f.Advance(10 * time.Second)
	if n != 10 {
		t.Fatalf("ticked %d times in 10 s, want 10", n)
	}
	runs := 0
	r := f.AfterFunc(time.Second, func() { runs++ })
	if !r.Reset(5 * time.Second) {
		t.Fatal("Reset of a pending timer reported false")
	}
	f.Advance(2 * time.Second)
	if runs != 0 {
		t.Fatal("reset timer ran at its old deadline")
	}
	f.Advance(4 * time.Second)
	if runs != 1 {
		t.Fatalf("reset timer ran %d times, want 1", runs)
	}
	if r.Reset(time.Second) {
		t.Fatal("Reset of a fired timer reported pending")
	}
	f.Advance(time.Second)
	if runs != 2 {
		t.Fatalf("re-armed timer ran %d times in all, want 2", runs)
	}
}

// TestWaitPending: a timer armed on another goroutine is seen.
func TestWaitPending(t *testing.T) {
	f := New(epoch)
	go f.AfterFunc(time.Minute, func() {})
	if !f.WaitPending(1, 5*time.Second) {
		t.Fatal("timer armed on another goroutine not seen")
	}
	if f.WaitPending(2, 10*time.Millisecond) {
		t.Fatal("WaitPending(2) true with one timer")
	}
	if at, ok := f.NextDeadline(); !ok || at != epoch.Add(time.Minute) {
		t.Fatalf("next deadline %v %v", at, ok)
	}
}
