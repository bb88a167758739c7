package bench

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"
)

// progress counts, during a setup run, the phase 1s the initiator
// established, the tunnels it has up and the child SAs the responder has
// up, and when the last one needed of each came. A tunnel is set up when
// both sides have installed its SAs. Safe for concurrent use.
type progress struct {
	wantPhase1, wantUp int
	stall              time.Duration // how long wait lets nothing come up

	mu       sync.Mutex
	phase1   int
	up       int // on the initiator
	respUp   int // on the responder
	failed   int
	phase1At time.Time
	upAt     time.Time
	respAt   time.Time
	isUp     []bool      // by tunnel index, when the initiator says which
	respAll  []time.Time // when each child SA came up on the responder
	changed  chan struct{}
}

func newProgress(phase1s, tunnels int) *progress {
	return &progress{wantPhase1: phase1s, wantUp: tunnels, stall: stallLimit, isUp: make([]bool, tunnels),
		respAll: make([]time.Time, 0, tunnels), changed: make(chan struct{}, 1)}
}

func (p *progress) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *progress) addPhase1(at time.Time) {
	p.mu.Lock()
	if p.phase1++; p.phase1 == p.wantPhase1 {
		p.phase1At = at
	}
	p.mu.Unlock()
	p.notify()
}

// addUp counts tunnel i up; i < 0 when the initiator does not say which.
func (p *progress) addUp(i int, at time.Time) {
	p.mu.Lock()
	if i >= 0 && i < len(p.isUp) {
		if p.isUp[i] {
			p.mu.Unlock()
			return
		}
		p.isUp[i] = true
	}
	if p.up++; p.up == p.wantUp {
		p.upAt = at
	}
	p.mu.Unlock()
	p.notify()
}

// addRespUp counts a child SA up on the responder.
func (p *progress) addRespUp(at time.Time) {
	p.mu.Lock()
	if p.respUp++; p.respUp == p.wantUp {
		p.respAt = at
	}
	if len(p.respAll) < cap(p.respAll) {
		p.respAll = append(p.respAll, at)
	}
	p.mu.Unlock()
	p.notify()
}

func (p *progress) addFailed() {
	p.mu.Lock()
	p.failed++
	p.mu.Unlock()
}

// down returns the tunnels below n not up yet.
func (p *progress) down(n int) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for i, up := range p.isUp[:n] {
		if !up {
			out = append(out, i)
		}
	}
	return out
}

func (p *progress) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%d of %d phase 1s, %d of %d tunnels up on the initiator, %d on the responder, %d failures",
		p.phase1, p.wantPhase1, p.up, p.wantUp, p.respUp, p.failed)
}

// stallLimit is how long a run may go without any tunnel or phase 1
// coming up before it is declared stuck: every IKE retransmission
// (ISM's and charon's, 2 seconds then backing off) has had its chance.
const stallLimit = 20 * time.Second

// wait returns once every tunnel is up on both sides, with the durations
// from start to the last phase 1 and to the last tunnel up. At first, each
// time something comes up and every second, it calls pump with how many
// tunnels may have been started by then: window more than have come up on
// the responder, or all of them when window is 0. Every second it also
// calls tick (nil for none). It fails the run with state() at deadline, or
// when nothing has come up for p.stall.
func (p *progress) wait(h *harness, start, deadline time.Time, window int, pump func(limit int), tick func(), state func() string) (phase1, all time.Duration) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, lastChange := -1, time.Now()
	for {
		p.mu.Lock()
		done := p.up >= p.wantUp && p.respUp >= p.wantUp && p.phase1 >= p.wantPhase1
		phase1, all = p.phase1At.Sub(start), max(p.upAt.Sub(start), p.respAt.Sub(start))
		count := p.up + p.respUp + p.phase1
		limit := p.wantUp
		if window > 0 {
			limit = min(limit, p.respUp+window)
		}
		p.mu.Unlock()
		if done {
			return phase1, all
		}
		pump(limit)
		if count != last {
			last, lastChange = count, time.Now()
		}
		select {
		case <-p.changed:
		case now := <-t.C:
			if now.After(deadline) {
				h.Fatalf("not all up in time: %s\n%s", p, state())
			}
			if now.Sub(lastChange) > p.stall {
				h.Fatalf("no progress for %s: %s\n%s", p.stall, p, state())
			}
			if tick != nil {
				tick()
			}
		}
	}
}

// quantile returns how long after start a fraction q of the tunnels had
// come up on the responder.
func (p *progress) quantile(start time.Time, q float64) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.respAll) == 0 {
		return 0
	}
	ts := slices.Clone(p.respAll)
	slices.SortFunc(ts, time.Time.Compare)
	i := min(len(ts)-1, max(0, int(math.Ceil(q*float64(len(ts))))-1))
	return ts[i].Sub(start)
}

// memory is the Go runtime's memory after a full collection: in use
// (heap spans with live objects, and stacks) and live (the objects).
type memory struct{ inUse, live uint64 }

func readMemory() memory {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memory{inUse: m.HeapInuse + m.StackInuse, live: m.HeapAlloc}
}

// perTunnel is the growth from m to n per tunnel.
func (m memory) perTunnel(n memory, tunnels int) (inUse, live float64) {
	return (float64(n.inUse) - float64(m.inUse)) / float64(tunnels), (float64(n.live) - float64(m.live)) / float64(tunnels)
}
