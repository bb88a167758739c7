// Package clocktest is a fake clock.Clock for tests of timer logic: time
// moves only when the test advances it, and the timers that fall due run in
// deadline order, so that an hour of lifetimes, retransmissions and DPD
// inquiries takes milliseconds and always happens the same way.
package clocktest

import (
	"sort"
	"sync"
	"time"

	"github.com/ismgw/ism/clock"
)

// Fake is a manual clock. Its zero value is not usable; call New. It is
// safe for concurrent use.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64 // orders timers with the same deadline by creation
	timers []*timer
	change *sync.Cond
}

var _ clock.Clock = (*Fake)(nil)

// New returns a fake clock reading start.
func New(start time.Time) *Fake {
	f := &Fake{now: start}
	f.change = sync.NewCond(&f.mu)
	return f
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// AfterFunc schedules fn at Now()+d. Due timers run when Advance reaches
// their deadline, on the goroutine that calls Advance.
func (f *Fake) AfterFunc(d time.Duration, fn func()) clock.Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &timer{f: f, fn: fn}
	f.schedule(t, d)
	return t
}

// schedule (re)arms t; f.mu is held.
func (f *Fake) schedule(t *timer, d time.Duration) {
	f.seq++
	t.at, t.seq, t.pending = f.now.Add(max(d, 0)), f.seq, true
	if !t.listed {
		t.listed = true
		f.timers = append(f.timers, t)
	}
	f.change.Broadcast()
}

// Advance moves the clock forward by d, running every timer that falls due
// on the way, earliest first, with Now() reading each one's deadline while
// it runs. Timers that those calls schedule within the span run too.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	for {
		t := f.next(end)
		if t == nil {
			break
		}
		if t.at.After(f.now) {
			f.now = t.at
		}
		t.pending = false
		f.mu.Unlock()
		t.fn()
		f.mu.Lock()
	}
	f.now = end
	f.change.Broadcast()
	f.mu.Unlock()
}

// next removes and returns the earliest pending timer due by end; f.mu is
// held.
func (f *Fake) next(end time.Time) *timer {
	live := f.timers[:0]
	for _, t := range f.timers {
		if t.pending {
			live = append(live, t)
		} else {
			t.listed = false
		}
	}
	clear(f.timers[len(live):])
	f.timers = live
	if len(live) == 0 {
		return nil
	}
	sort.Slice(live, func(i, j int) bool {
		if !live[i].at.Equal(live[j].at) {
			return live[i].at.Before(live[j].at)
		}
		return live[i].seq < live[j].seq
	})
	t := live[0]
	if t.at.After(end) {
		return nil
	}
	f.timers = live[1:]
	t.listed = false
	return t
}

// Pending returns how many timers are scheduled.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.timers {
		if t.pending {
			n++
		}
	}
	return n
}

// WaitPending blocks until at least n timers are scheduled or timeout (real
// time) passes, and reports whether they are: for code that arms its timers
// on goroutines of its own.
func (f *Fake) WaitPending(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	wake := time.AfterFunc(timeout, func() {
		f.mu.Lock()
		f.change.Broadcast()
		f.mu.Unlock()
	})
	defer wake.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		c := 0
		for _, t := range f.timers {
			if t.pending {
				c++
			}
		}
		if c >= n {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		f.change.Wait()
	}
}

// NextDeadline returns when the earliest pending timer is due, and false
// when none is.
func (f *Fake) NextDeadline() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var at time.Time
	found := false
	for _, t := range f.timers {
		if t.pending && (!found || t.at.Before(at)) {
			at, found = t.at, true
		}
	}
	return at, found
}

type timer struct {
	f       *Fake
	fn      func()
	at      time.Time
	seq     uint64
	pending bool
	listed  bool // in f.timers
}

func (t *timer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.pending
	t.pending = false
	return was
}

func (t *timer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.pending
	t.pending = false
	t.f.schedule(t, d)
	return was
}
