package ike

import (
	"runtime"
	"sync/atomic"
)

// publicKeyWork is where a Diffie-Hellman key pair, shared secret or KEM
// operation runs: at most GOMAXPROCS-1 at once (at least one), so that a
// CPU stays free for the data path. Each takes a millisecond or more; a
// gateway negotiating 250 IKE SAs at once ran that many goroutines doing
// it on a 2-CPU machine, and the secure interface's read loop waited
// behind them for a CPU long enough for its device queue to overflow
// (the 10,000-tunnel soak, after the peer's restart).
var publicKeyWork = newWorkSlots(max(1, runtime.GOMAXPROCS(0)-1))

// workSlots bounds how many goroutines do a kind of work at once; the
// others wait for a place. Safe for concurrent use.
type workSlots struct {
	places chan struct{}
	// busy is how many hold a place, peak the most that did, and done
	// how many places were taken in all: for tests.
	busy, peak atomic.Int32
	done       atomic.Uint64
}

func newWorkSlots(n int) *workSlots { return &workSlots{places: make(chan struct{}, n)} }

// take waits for a place; the caller gives it back with leave.
func (w *workSlots) take() {
	w.places <- struct{}{}
	n := w.busy.Add(1)
	for p := w.peak.Load(); n > p && !w.peak.CompareAndSwap(p, n); p = w.peak.Load() {
	}
	w.done.Add(1)
}

func (w *workSlots) leave() {
	w.busy.Add(-1)
	<-w.places
}
