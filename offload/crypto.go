package offload

import (
	"sync"
	"time"

	"github.com/ismgw/ism/driver"
)

// burstState is what a burst carries from the prepare stage to the finish
// stage: the bindings it holds, its SAs' traffic not yet accounted, and its
// ops by driver. A Processor that runs whole bursts has one; each Burst of a
// Pipeline has its own, since several are in flight. It belongs to one
// stage at a time and is not safe for concurrent use.
type burstState struct {
	held  []*binding     // bindings referenced by the burst
	acc   []acct         // SA traffic of the burst, accounted at its end
	byDrv [][]*driver.Op // ops by driver index
	last  *binding       // the last of held
}

func (s *burstState) init(drivers int) {
	s.held = make([]*binding, 0, 2*BurstSize)
	s.acc = make([]acct, 0, BurstSize)
	s.byDrv = make([][]*driver.Op, drivers)
	for i := range s.byDrv {
		s.byDrv[i] = make([]*driver.Op, 0, BurstSize)
	}
}

// holdBinding takes a reference on b until the end of the burst.
func (s *burstState) holdBinding(b *binding) bool {
	if !b.acquire() {
		return false
	}
	s.held = append(s.held, b)
	s.last = b
	return true
}

func (s *burstState) releaseAll() {
	for _, b := range s.held {
		b.release()
	}
	clear(s.held)
	s.held, s.last = s.held[:0], nil
}

// qpLease is one queue pair of an asynchronous driver with the lock that
// lets several goroutines share it: a queue pair is owned by one goroutine
// at a time (driver.QueuePair), and there may be more Processors and
// pipeline lanes than queue pairs. The lock is held for a whole
// submission, enqueue to last completion, so that a Dequeue returns only
// the holder's ops.
type qpLease struct {
	mu sync.Mutex
	qp driver.QueuePair
}

// cryptoRunner is stage 2: it runs a burst's ops on their drivers. It is
// owned by its Processor's goroutine and
// touches only the ops, except that a stuck accelerator's packets lose
// their buffers.
type cryptoRunner struct {
	e   *Engine
	qps []*qpLease // by driver index; nil for synchronous drivers
	deq [BurstSize]*driver.Op
}

// init takes the next queue pair of each asynchronous driver, round robin
// over the engine's runners.
func (c *cryptoRunner) init(e *Engine) {
	c.e = e
	n := int(e.nextQP.Add(1) - 1)
	c.qps = make([]*qpLease, len(e.leases))
	for i, l := range e.leases {
		if len(l) > 0 {
			c.qps[i] = l[n%len(l)]
		}
	}
}

// run runs every op of the burst and returns when all are complete.
func (c *cryptoRunner) run(s *burstState, pkts []*Packet) {
	for idx, ops := range s.byDrv {
		if len(ops) == 0 {
			continue
		}
		if sy := c.e.disp.sync[idx]; sy != nil {
			sy.Process(ops)
		} else {
			c.submit(s, idx, ops, pkts)
		}
		clear(ops)
		s.byDrv[idx] = ops[:0]
	}
}

// submit runs ops on an asynchronous driver's queue pair and waits for them.
// What the queue will not take within a bound goes to the fallback engine;
// a queue that does not complete within stuckAfter faults the driver.
func (c *cryptoRunner) submit(s *burstState, idx int, ops []*driver.Op, pkts []*Packet) {
	l := c.qps[idx]
	l.mu.Lock()
	defer l.mu.Unlock()
	qp := l.qp
	sent, inflight, idle := 0, 0, 0
	for sent < len(ops) && idle < 64 {
		n := qp.Enqueue(ops[sent:])
		sent += n
		inflight += n
		if n == 0 {
			idle++
		}
		inflight -= qp.Dequeue(c.deq[:])
	}
	if sent < len(ops) {
		rest := ops[sent:]
		for _, op := range rest {
			pk := pkts[op.Tag]
			if fb := c.e.disp.spill(pk.SA); fb != nil && s.holdBinding(fb) {
				op.Session = fb.sess
			}
		}
		c.e.disp.counts[fbQueueFull].Add(uint64(len(rest)))
		c.e.disp.sync[0].Process(rest)
	}
	var deadline time.Time
	for inflight > 0 {
		n := qp.Dequeue(c.deq[:])
		inflight -= n
		if n > 0 {
			deadline = time.Time{}
			continue
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(stuckAfter)
		} else if time.Now().After(deadline) {
			c.stuck(idx, ops[:sent], pkts)
			return
		}
	}
}

// stuck gives up on ops a driver never completed: their packets are dropped
// and come back with Buf nil, the buffer abandoned to the driver; the
// driver's SAs move to the fallback engine.
func (c *cryptoRunner) stuck(idx int, ops []*driver.Op, pkts []*Packet) {
	d := c.e.disp
	drv := d.all[idx]
	for _, op := range ops {
		if op.Status == driver.NotProcessed {
			op.Status = driver.Fault
			pkts[op.Tag].Buf = nil
		}
	}
	for _, sa := range c.e.SAs() {
		if b := sa.bind.Load(); b != nil && b.idx == idx {
			d.moveToFallback(sa, drv.Name()+" queue stuck")
		}
	}
}
