package driver

import "sync/atomic"

// SoftQueuePair is the queue pair of an engine that works on the CPU (the
// pure-Go fallback, the kernel's AF_ALG lookaside): Enqueue hands ops, a
// batch at a time, to one worker goroutine, which runs them in the order
// given while the owner goes on submitting; Dequeue returns them in
// submission order without blocking. Enqueue and Dequeue are for the
// queue pair's owner only; Stats may be called from any goroutine. Its
// zero value is not usable: call NewSoftQueuePair.
type SoftQueuePair struct {
	free   chan *softBatch // empty batches
	submit chan *softBatch
	done   chan *softBatch
	cur    *softBatch // partly dequeued
	curPos int
	// counters are atomic so that Stats may be called from any goroutine
	enqueued, dequeued, short atomic.Uint64
	stopped                   chan struct{}
}

// softBatch is a group of ops moved between the owner and the worker.
type softBatch struct {
	ops []*Op
}

var _ QueuePair = (*SoftQueuePair)(nil)

// NewSoftQueuePair starts a queue pair of depth/batch batches of up to
// batch ops each (depth ops in all) whose worker calls run on each op. run
// is called from the worker goroutine only, so state it keeps needs no
// lock.
func NewSoftQueuePair(depth, batch int, run func(*Op)) *SoftQueuePair {
	n := max(depth/batch, 1)
	q := &SoftQueuePair{
		free:    make(chan *softBatch, n),
		submit:  make(chan *softBatch, n),
		done:    make(chan *softBatch, n),
		stopped: make(chan struct{}),
	}
	for range n {
		q.free <- &softBatch{ops: make([]*Op, 0, batch)}
	}
	go q.work(run)
	return q
}

// work runs batches until Close. done has room for every batch, so the
// worker never blocks on it.
func (q *SoftQueuePair) work(run func(*Op)) {
	defer close(q.stopped)
	for b := range q.submit {
		for _, op := range b.ops {
			run(op)
		}
		q.done <- b
	}
}

// Enqueue hands ops to the worker; it runs short when every batch is in
// flight.
func (q *SoftQueuePair) Enqueue(ops []*Op) int {
	n := 0
	for n < len(ops) {
		var b *softBatch
		select {
		case b = <-q.free:
		default:
			q.short.Add(1)
			q.enqueued.Add(uint64(n))
			return n
		}
		k := min(cap(b.ops), len(ops)-n)
		b.ops = append(b.ops[:0], ops[n:n+k]...)
		for _, op := range b.ops {
			op.Status = NotProcessed
		}
		n += k
		q.submit <- b
	}
	q.enqueued.Add(uint64(n))
	return n
}

// Dequeue returns completed ops without blocking.
func (q *SoftQueuePair) Dequeue(ops []*Op) int {
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
		k := copy(ops[n:], q.cur.ops[q.curPos:])
		n += k
		q.curPos += k
		if q.curPos == len(q.cur.ops) {
			clear(q.cur.ops)
			q.cur.ops = q.cur.ops[:0]
			q.free <- q.cur
			q.cur = nil
		}
	}
	q.dequeued.Add(uint64(n))
	return n
}

// Stats returns the queue pair's counters.
func (q *SoftQueuePair) Stats() QueueStats {
	return QueueStats{Enqueued: q.enqueued.Load(), Dequeued: q.dequeued.Load(), EnqueueErrors: q.short.Load()}
}

// Close stops the worker once it has run what was enqueued. The queue
// pair is not usable afterwards.
func (q *SoftQueuePair) Close() {
	close(q.submit)
	<-q.stopped
}
