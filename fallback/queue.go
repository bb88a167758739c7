package fallback

import (
	"sync/atomic"

	"github.com/ismgw/ism/driver"
)

// batch is a group of ops moved between the owner of a queue pair and its
// worker goroutine.
type batch struct {
	ops [burst]*driver.Op
	n   int
}

// queuePair feeds one worker goroutine. Enqueue and Dequeue are called by the
// queue pair's owner only; the worker runs ops in the order given, so
// completions come back in submission order.
type queuePair struct {
	free   chan *batch // empty batches
	submit chan *batch
	done   chan *batch
	cur    *batch // partly dequeued
	curPos int
	// counters are atomic so that Stats may be called from any goroutine
	enqueued, dequeued, short atomic.Uint64
	stopped                   chan struct{}
}

func newQueuePair() *queuePair {
	n := QueueDepth / burst
	q := &queuePair{
		free:    make(chan *batch, n),
		submit:  make(chan *batch, n),
		done:    make(chan *batch, n),
		stopped: make(chan struct{}),
	}
	for range n {
		q.free <- new(batch)
	}
	go q.work()
	return q
}

func (q *queuePair) work() {
	defer close(q.stopped)
	var w worker
	for b := range q.submit {
		for _, op := range b.ops[:b.n] {
			w.run(op)
		}
		q.done <- b
	}
}

// Enqueue hands ops to the worker in batches; it runs short when every batch
// is in flight.
func (q *queuePair) Enqueue(ops []*driver.Op) int {
	n := 0
	for n < len(ops) {
		var b *batch
		select {
		case b = <-q.free:
		default:
			q.short.Add(1)
			q.enqueued.Add(uint64(n))
			return n
		}
		b.n = copy(b.ops[:], ops[n:])
		n += b.n
		q.submit <- b
	}
	q.enqueued.Add(uint64(n))
	return n
}

// Dequeue returns completed ops without blocking.
func (q *queuePair) Dequeue(ops []*driver.Op) int {
	n := 0
	for n < len(ops) {
		if q.cur == nil {
			select {
			case q.cur = <-q.done:
				q.curPos = 0
			default:
				q.dequeued.Add(uint64(n))
				return n
			}
		}
		k := copy(ops[n:], q.cur.ops[q.curPos:q.cur.n])
		n += k
		q.curPos += k
		if q.curPos == q.cur.n {
			clear(q.cur.ops[:q.cur.n])
			q.free <- q.cur
			q.cur = nil
		}
	}
	q.dequeued.Add(uint64(n))
	return n
}

// Stats returns the queue pair's counters.
func (q *queuePair) Stats() driver.QueueStats {
	return driver.QueueStats{Enqueued: q.enqueued.Load(), Dequeued: q.dequeued.Load(), EnqueueErrors: q.short.Load()}
}

func (q *queuePair) close() {
	close(q.submit)
	<-q.stopped
}
