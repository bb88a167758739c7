package v1

import (
	"sync"
	"time"

	"github.com/ismgw/ism/clock"
)

// lifeTimer runs an SA's two lifetime events, the soft one (rekey) and
// then the hard one (expiry), as an entry in the daemon's timerList: the
// soft event puts the hard one in. Daemon.mu guards event, hardAt,
// softNext and stopped; timerList.mu guards at and pos. The zero value is
// unarmed.
type lifeTimer struct {
	at, hardAt time.Duration // since timerList.base
	event      func(soft bool)
	pos        int32 // 1 + its index in timerList.heap; 0 when not in it
	softNext   bool  // the event at at is the soft one
	stopped    bool
}

// armLifeLocked schedules event(true) after softIn and event(false) after
// hardIn, both from now; a soft event due at or after the hard one is left
// out. Daemon.mu must be held.
func (d *Daemon) armLifeLocked(l *lifeTimer, softIn, hardIn time.Duration, event func(soft bool)) {
	now := d.lives.since()
	l.event, l.hardAt, l.stopped = event, now+hardIn, false
	l.softNext = softIn < hardIn
	if l.softNext {
		d.lives.add(l, now+softIn)
		return
	}
	d.lives.add(l, l.hardAt)
}

// stopLifeLocked cancels l's events not yet run. Daemon.mu must be held.
func (d *Daemon) stopLifeLocked(l *lifeTimer) {
	l.stopped = true
	d.lives.remove(l)
}

// runLife runs l's event that is due.
func (d *Daemon) runLife(l *lifeTimer) {
	d.mu.Lock()
	if l.stopped {
		d.mu.Unlock()
		return
	}
	soft, event := l.softNext, l.event
	if soft {
		l.softNext = false
		d.lives.add(l, l.hardAt)
	}
	d.mu.Unlock()
	event(soft)
}

// timerList is a min-heap of lifeTimers due on one clock timer, armed for
// the earliest: a clock timer per SA would cost about 190 bytes (the
// timer and its closure), an entry here a slot. It never calls out with
// its mutex held; Daemon.mu, when held, is taken before it. Make it with
// newTimerList.
type timerList struct {
	clk  clock.Clock
	base time.Time // at is measured from here (monotonic on the real clock)
	run  func(*lifeTimer)

	mu    sync.Mutex
	heap  []*lifeTimer
	t     clock.Timer   // nil until the first entry
	armed time.Duration // t's deadline when t is pending; -1 when not
}

func newTimerList(clk clock.Clock, run func(*lifeTimer)) *timerList {
	return &timerList{clk: clk, base: clk.Now(), run: run, armed: -1}
}

func (tl *timerList) since() time.Duration { return tl.clk.Now().Sub(tl.base) }

// add puts l in at at, or moves it there.
func (tl *timerList) add(l *lifeTimer, at time.Duration) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	l.at = at
	if l.pos == 0 {
		tl.heap = append(tl.heap, l)
		l.pos = int32(len(tl.heap))
		tl.up(len(tl.heap) - 1)
	} else if i := int(l.pos - 1); !tl.up(i) {
		tl.down(i)
	}
	tl.armLocked()
}

// remove takes l out, if it is in.
func (tl *timerList) remove(l *lifeTimer) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if l.pos == 0 {
		return
	}
	i, last := int(l.pos-1), len(tl.heap)-1
	tl.swap(i, last)
	tl.heap[last] = nil
	tl.heap = tl.heap[:last]
	l.pos = 0
	if i < last && !tl.up(i) {
		tl.down(i)
	}
	tl.armLocked()
}

// fire takes out the entries due and runs them.
func (tl *timerList) fire() {
	tl.mu.Lock()
	tl.armed = -1
	now := tl.since()
	var due []*lifeTimer
	for len(tl.heap) > 0 && tl.heap[0].at <= now {
		l := tl.heap[0]
		last := len(tl.heap) - 1
		tl.swap(0, last)
		tl.heap[last] = nil
		tl.heap = tl.heap[:last]
		l.pos = 0
		tl.down(0)
		due = append(due, l)
	}
	tl.armLocked()
	tl.mu.Unlock()
	for _, l := range due {
		tl.run(l)
	}
}

// armLocked points the clock timer at the earliest entry; tl.mu is held.
func (tl *timerList) armLocked() {
	if len(tl.heap) == 0 {
		if tl.t != nil && tl.armed >= 0 {
			tl.t.Stop()
			tl.armed = -1
		}
		return
	}
	at := tl.heap[0].at
	if tl.armed >= 0 && tl.armed == at {
		return
	}
	in := max(0, at-tl.since())
	tl.armed = at
	if tl.t == nil {
		tl.t = tl.clk.AfterFunc(in, tl.fire)
		return
	}
	tl.t.Reset(in)
}

func (tl *timerList) less(i, j int) bool { return tl.heap[i].at < tl.heap[j].at }

func (tl *timerList) swap(i, j int) {
	h := tl.heap
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = int32(i+1), int32(j+1)
}

// up moves entry i towards the root; it reports whether it moved.
func (tl *timerList) up(i int) bool {
	moved := false
	for i > 0 {
		p := (i - 1) / 2
		if !tl.less(i, p) {
			break
		}
		tl.swap(i, p)
		i, moved = p, true
	}
	return moved
}

// down moves entry i towards the leaves.
func (tl *timerList) down(i int) {
	n := len(tl.heap)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && tl.less(r, c) {
			c = r
		}
		if !tl.less(c, i) {
			return
		}
		tl.swap(i, c)
		i = c
	}
}
