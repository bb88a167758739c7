package driver

import (
	"testing"
	"time"
)

// TestSoftQueuePair: ops come back in submission order, each run once,
// with the worker's status; Enqueue runs short when the queue is full and
// the counters say so.
func TestSoftQueuePair(t *testing.T) {
	for _, batch := range []int{1, 4} {
		release := make(chan struct{})
		seen := 0
		q := NewSoftQueuePair(16, batch, func(op *Op) {
			<-release
			seen++
			op.Status = OK
			op.Tag = uint64(seen)
		})
		ops := make([]*Op, 20)
		for i := range ops {
			ops[i] = &Op{Status: Fault}
		}
		n := q.Enqueue(ops)
		if n != 16 {
			t.Fatalf("batch %d: enqueued %d of 20 into a queue of 16", batch, n)
		}
		for _, op := range ops[:n] {
			if op.Status != NotProcessed {
				t.Fatalf("batch %d: enqueued op with status %v", batch, op.Status)
			}
		}
		if got := q.Dequeue(make([]*Op, 4)); got != 0 {
			t.Fatalf("batch %d: dequeued %d before any op ran", batch, got)
		}
		close(release)
		out := make([]*Op, 0, n)
		deadline := time.Now().Add(10 * time.Second)
		for len(out) < n {
			buf := make([]*Op, 3)
			k := q.Dequeue(buf)
			out = append(out, buf[:k]...)
			if time.Now().After(deadline) {
				t.Fatalf("batch %d: %d of %d ops completed", batch, len(out), n)
			}
		}
		for i, op := range out {
			if op != ops[i] || op.Status != OK || op.Tag != uint64(i+1) {
				t.Fatalf("batch %d: completion %d is %+v, want op %d run in order", batch, i, op, i)
			}
		}
		if n := q.Enqueue(ops[16:]); n != 4 {
			t.Errorf("batch %d: enqueued %d of 4 after draining", batch, n)
		}
		q.Close()
		if st := q.Stats(); st.Enqueued != 20 || st.Dequeued != 16 || st.EnqueueErrors != 1 {
			t.Errorf("batch %d: stats %+v", batch, st)
		}
	}
}
