// Package drivertest provides driver.Driver doubles for testing the dispatch
// and fallback paths of package offload: a driver that refuses, one that
// completes late and out of order, and one that faults or gets stuck. The
// doubles that do crypto run it with the fallback engine, so their output is
// real.
package drivertest

import (
	"errors"
	"math/rand/v2"
	"sync"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/transform"
)

// Refusing is a driver that makes no sessions. With Advertise set its Info
// claims every transform, so that binding gets as far as NewSession;
// otherwise it claims none.
type Refusing struct {
	Label     string
	Advertise bool
	events    chan driver.Event
	once      sync.Once
}

var _ driver.Driver = (*Refusing)(nil)

// Name returns the label.
func (r *Refusing) Name() string { return r.Label }

// Info claims every transform under LookasideCrypto when Advertise is set.
func (r *Refusing) Info() driver.Info {
	info := driver.Info{QueuePairs: 1, QueueDepth: 64}
	if r.Advertise {
		info.Capabilities = allCaps()
	}
	return info
}

// NewSession always fails.
func (r *Refusing) NewSession(driver.SessionConfig) (driver.Session, error) {
	return nil, errors.New("drivertest: session refused")
}

// QueuePair is never used: no session, no op.
func (r *Refusing) QueuePair(int) driver.QueuePair { return nil }

// Events returns a channel that only closes.
func (r *Refusing) Events() <-chan driver.Event {
	r.once.Do(func() { r.events = make(chan driver.Event) })
	return r.events
}

// Close closes the events channel.
func (r *Refusing) Close() error {
	r.Events()
	close(r.events)
	return nil
}

func allCaps() []driver.Capability {
	var caps []driver.Capability
	for _, t := range transform.All() {
		caps = append(caps, driver.Capability{Transform: t, Action: driver.LookasideCrypto})
	}
	return caps
}

// Async is an asynchronous device made of the fallback engine: Enqueue only
// queues; Dequeue completes a few queued ops at a time, late and in a
// shuffled order, as a multi-engine accelerator may. Fault, when set, makes
// ops from the FaultAfter-th on complete with driver.Fault; Stuck makes
// Dequeue return nothing at all.
type Async struct {
	Label      string
	Depth      int
	FaultAfter int // with Fault: ops completed before faults start
	Fault      bool
	Stuck      bool

	mu     sync.Mutex
	eng    *fallback.Driver
	qp     *asyncQP
	events chan driver.Event
	closed bool
}

var _ driver.Driver = (*Async)(nil)

// NewAsync returns an Async device with one queue pair of depth ops.
func NewAsync(label string, depth int) *Async {
	a := &Async{Label: label, Depth: depth, eng: fallback.New(1), events: make(chan driver.Event, 4)}
	a.qp = &asyncQP{dev: a, rng: rand.New(rand.NewPCG(1, 2))}
	return a
}

// Name returns the label.
func (a *Async) Name() string { return a.Label }

// Info claims every transform under LookasideCrypto, out-of-order.
func (a *Async) Info() driver.Info {
	return driver.Info{Capabilities: allCaps(), Features: driver.FeatureOutOfOrder | driver.FeatureInPlace,
		QueuePairs: 1, QueueDepth: a.Depth, Tailroom: 8}
}

// NewSession makes a fallback session; the op's session is that session.
func (a *Async) NewSession(c driver.SessionConfig) (driver.Session, error) {
	c.Action = driver.CPUCrypto
	return a.eng.NewSession(c)
}

// QueuePair returns the one queue pair.
func (a *Async) QueuePair(int) driver.QueuePair { return a.qp }

// Events reports faults posted with PostFault.
func (a *Async) Events() <-chan driver.Event { return a.events }

// PostFault reports a device fault on Events.
func (a *Async) PostFault(err error) {
	a.events <- driver.Event{Driver: a.Label, Kind: driver.EventFault, Err: err}
}

// Close stops the device.
func (a *Async) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		a.closed = true
		close(a.events)
		a.eng.Close()
	}
	return nil
}

// Stats returns the queue pair's counters.
func (a *Async) Stats() driver.QueueStats { return a.qp.Stats() }

type asyncQP struct {
	dev     *Async
	pending []*driver.Op
	rng     *rand.Rand
	polls   int
	done    int
	stats   driver.QueueStats
}

func (q *asyncQP) Enqueue(ops []*driver.Op) int {
	n := min(len(ops), q.dev.Depth-len(q.pending))
	q.pending = append(q.pending, ops[:n]...)
	q.stats.Enqueued += uint64(n)
	if n < len(ops) {
		q.stats.EnqueueErrors++
	}
	return n
}

// Dequeue completes at most half of the pending ops (at least one), and only
// every other call, in a shuffled order.
func (q *asyncQP) Dequeue(ops []*driver.Op) int {
	q.polls++
	if q.dev.Stuck || len(q.pending) == 0 || q.polls%2 == 1 {
		return 0
	}
	q.rng.Shuffle(len(q.pending), func(i, j int) { q.pending[i], q.pending[j] = q.pending[j], q.pending[i] })
	n := min(len(ops), max(1, len(q.pending)/2))
	copy(ops, q.pending[:n])
	q.pending = append(q.pending[:0], q.pending[n:]...)
	for _, op := range ops[:n] {
		if q.dev.Fault && q.done >= q.dev.FaultAfter {
			op.Status = driver.Fault
			q.stats.Faults++
		} else {
			q.dev.eng.Process([]*driver.Op{op})
		}
		q.done++
	}
	q.stats.Dequeued += uint64(n)
	return n
}

func (q *asyncQP) Stats() driver.QueueStats { return q.stats }
