package kernel

import (
	"sync/atomic"

	"github.com/ismgw/ism/driver"
)

// queuePair feeds one worker goroutine, which runs each op's system calls
// while the owner of the queue pair goes on submitting: with several queue
// pairs, several requests are in the kernel (and in a hardware engine behind
// it) at once. Completions come back in submission order.
type queuePair struct {
	in, out  chan *driver.Op
	inflight int // owner only
	// counters are atomic so that Stats may be called from any goroutine
	enqueued, dequeued, short atomic.Uint64
	stopped                   chan struct{}
}

func newQueuePair() *queuePair {
	q := &queuePair{
		in:      make(chan *driver.Op, QueueDepth),
		out:     make(chan *driver.Op, QueueDepth),
		stopped: make(chan struct{}),
	}
	go q.work()
	return q
}

// work runs ops until the queue pair is closed. out has room for every op
// in flight, so the worker never blocks on it.
func (q *queuePair) work() {
	defer close(q.stopped)
	var w worker
	for op := range q.in {
		w.run(op)
		q.out <- op
	}
}

// Enqueue accepts ops until QueueDepth are in flight.
func (q *queuePair) Enqueue(ops []*driver.Op) int {
	n := min(len(ops), QueueDepth-q.inflight)
	for _, op := range ops[:n] {
		op.Status = driver.NotProcessed
		q.in <- op
	}
	q.inflight += n
	q.enqueued.Add(uint64(n))
	if n < len(ops) {
		q.short.Add(1)
	}
	return n
}

// Dequeue returns completed ops without blocking.
func (q *queuePair) Dequeue(ops []*driver.Op) int {
	n := 0
	for n < len(ops) {
		select {
		case op := <-q.out:
			ops[n] = op
			n++
		default:
			q.inflight -= n
			q.dequeued.Add(uint64(n))
			return n
		}
	}
	q.inflight -= n
	q.dequeued.Add(uint64(n))
	return n
}

// Stats returns the queue pair's counters.
func (q *queuePair) Stats() driver.QueueStats {
	return driver.QueueStats{Enqueued: q.enqueued.Load(), Dequeued: q.dequeued.Load(), EnqueueErrors: q.short.Load()}
}

func (q *queuePair) close() {
	close(q.in)
	<-q.stopped
}
