package v2

import (
	"container/heap"
	"sync"
	"time"

	"github.com/ismgw/ism/clock"
)

// schedule runs the daemon's lifetime timers (of IKE SAs and child SAs)
// off one clock timer, armed for the earliest of them: they are many
// (10,000 tunnels have 20,000), long, and seldom fire, and a clock timer
// costs about 130 bytes where a lazyTimer, in the SA it times, costs 24
// (issue 13). Their functions run one after the other on the clock
// timer's goroutine (clocktest.Fake: the one that advances it). Safe for
// concurrent use; make it with newSchedule.
type schedule struct {
	clk   clock.Clock
	epoch time.Time // lazyTimer.at counts from it (monotonic with clock.Real)

	mu     sync.Mutex
	timers timerHeap
	wake   clock.Timer   // armed for wakeAt; nil when none is
	wakeAt time.Duration // since epoch
	gen    uint64        // wake's: a stopped wake that runs anyway does nothing
	closed bool
}

// lazyTimer is one timer of a schedule, kept in the SA it times. Guarded
// by the schedule's mutex. The zero value is stopped and ready.
type lazyTimer struct {
	at  time.Duration // due, since the schedule's epoch
	pos int           // index in the heap plus one; 0: not pending
	fn  func()
}

func newSchedule(clk clock.Clock) *schedule { return &schedule{clk: clk, epoch: clk.Now()} }

// stamp is an instant as its offset from a schedule's epoch: 8 bytes
// where a time.Time takes 24 (issue 13), monotonic where the clock is.
type stamp time.Duration

// stamp returns t as a stamp of the schedule.
func (s *schedule) stamp(t time.Time) stamp { return stamp(t.Sub(s.epoch)) }

// time returns the instant of a stamp of the schedule.
func (s *schedule) time(st stamp) time.Time { return s.epoch.Add(time.Duration(st)) }

// nowStamp returns the clock's time as a stamp.
func (s *schedule) nowStamp() stamp { return s.stamp(s.clk.Now()) }

func (s *schedule) now() time.Duration { return s.clk.Now().Sub(s.epoch) }

// arm (re)schedules t to run fn after d, in place of what it was to run.
func (s *schedule) arm(t *lazyTimer, d time.Duration, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	t.at, t.fn = s.now()+max(d, 0), fn
	if t.pos == 0 {
		heap.Push(&s.timers, t)
	} else {
		heap.Fix(&s.timers, t.pos-1)
	}
	s.rearm()
}

// stop unschedules t and reports whether it was pending. A function that
// fell due already may still run: its owner checks its state, as with a
// clock timer.
func (s *schedule) stop(t *lazyTimer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.pos == 0 {
		return false
	}
	heap.Remove(&s.timers, t.pos-1)
	t.fn = nil
	return true
}

// rearm arms the clock timer for the earliest timer, unless it is armed
// for then or earlier (then it finds nothing due and arms again). s.mu
// is held.
func (s *schedule) rearm() {
	if len(s.timers) == 0 || s.closed {
		return
	}
	at := s.timers[0].at
	if s.wake != nil && s.wakeAt <= at {
		return
	}
	if s.wake != nil {
		s.wake.Stop()
	}
	s.gen++
	gen := s.gen
	s.wakeAt = at
	s.wake = s.clk.AfterFunc(at-s.now(), func() { s.fire(gen) })
}

// fire runs the timers that fell due, earliest first, outside the mutex.
func (s *schedule) fire(gen uint64) {
	s.mu.Lock()
	if gen != s.gen {
		s.mu.Unlock()
		return
	}
	s.wake = nil
	now := s.now()
	var due []func()
	for len(s.timers) > 0 && s.timers[0].at <= now {
		t := heap.Pop(&s.timers).(*lazyTimer)
		due = append(due, t.fn)
		t.fn = nil
	}
	s.rearm()
	s.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// close stops the schedule: its clock timer, and every timer. Arming
// does nothing afterwards.
func (s *schedule) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.wake != nil {
		s.wake.Stop()
		s.wake = nil
	}
	for _, t := range s.timers {
		t.pos, t.fn = 0, nil
	}
	s.timers = nil
}

// timerHeap orders lazyTimers by due time (container/heap).
type timerHeap []*lazyTimer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i+1, j+1
}
func (h *timerHeap) Push(x any) {
	t := x.(*lazyTimer)
	*h = append(*h, t)
	t.pos = len(*h)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.pos = 0
	return t
}
