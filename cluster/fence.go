package cluster

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/clock"
)

// fence is the deadline by which this node stops owning its groups
// unless its lease is renewed: sent+TTL−margin for the latest renewal
// whose request was sent at sent (see the package documentation for why
// that is before any other node can win). When the deadline passes, fire
// runs once, on the clock's goroutine. Its zero value is not usable; call
// newFence. It is safe for concurrent use; valid is lock-free, for the
// data path's per-burst check.
type fence struct {
	clk    clock.Clock
	margin time.Duration
	base   time.Time    // origin of until, read from clk (monotonic)
	until  atomic.Int64 // ns after base; ownership ends at it

	mu    sync.Mutex
	timer clock.Timer
	held  bool // a lease is held and the timer armed
	fire  func()
}

func newFence(clk clock.Clock, margin time.Duration, fire func()) *fence {
	return &fence{clk: clk, margin: margin, base: clk.Now(), fire: fire}
}

// valid reports whether the deadline is still ahead.
func (f *fence) valid() bool {
	return int64(f.clk.Now().Sub(f.base)) < f.until.Load()
}

// deadline returns the deadline, or the zero time when no lease is held.
func (f *fence) deadline() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.held {
		return time.Time{}
	}
	return f.base.Add(time.Duration(f.until.Load()))
}

// start arms the fence for a new lease granted by a request sent at sent.
func (f *fence) start(sent time.Time, ttl time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = true
	f.until.Store(0)
	f.extendLocked(sent, ttl)
}

// renewed moves the deadline to sent+ttl−margin if that is later: the
// lease, renewed by a request sent at sent, cannot expire before
// sent+ttl. It reports false, changing nothing, once the fence has fired
// or been stopped: a renewal that lands after the deadline is too late,
// since this node has stopped and a new lease is needed.
func (f *fence) renewed(sent time.Time, ttl time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.held || !f.valid() {
		return false
	}
	f.extendLocked(sent, ttl)
	return true
}

func (f *fence) extendLocked(sent time.Time, ttl time.Duration) {
	u := int64(sent.Add(ttl - f.margin).Sub(f.base))
	if u > f.until.Load() {
		f.until.Store(u)
	}
	wait := time.Duration(f.until.Load() - int64(f.clk.Now().Sub(f.base)))
	if f.timer == nil {
		f.timer = f.clk.AfterFunc(wait, f.expire)
	} else {
		f.timer.Reset(wait)
	}
}

// expire runs at the deadline: it fires unless a renewal moved it.
func (f *fence) expire() {
	f.mu.Lock()
	if !f.held {
		f.mu.Unlock()
		return
	}
	if left := time.Duration(f.until.Load() - int64(f.clk.Now().Sub(f.base))); left > 0 {
		f.timer.Reset(left)
		f.mu.Unlock()
		return
	}
	f.held = false
	f.until.Store(0)
	f.mu.Unlock()
	f.fire()
}

// stop disarms the fence without firing (a node leaving the cluster that
// has stopped its groups itself).
func (f *fence) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = false
	f.until.Store(0)
	if f.timer != nil {
		f.timer.Stop()
	}
}
