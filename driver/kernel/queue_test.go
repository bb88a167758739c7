package kernel

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/transform"
)

// TestQueuePair checks backpressure, completion and counters with ops that
// name no session of this driver, which works without AF_ALG.
func TestQueuePair(t *testing.T) {
	before := runtime.NumGoroutine()
	d := New(1, nil)
	q := d.QueuePair(0)
	ops := make([]*driver.Op, QueueDepth+10)
	for i := range ops {
		ops[i] = &driver.Op{Tag: uint64(i)}
	}
	if n := q.Enqueue(ops); n != QueueDepth {
		t.Fatalf("enqueued %d, want %d (the depth)", n, QueueDepth)
	}
	got := make([]*driver.Op, len(ops))
	n := 0
	for deadline := time.Now().Add(30 * time.Second); n < QueueDepth; time.Sleep(time.Millisecond) {
		n += q.Dequeue(got[n:])
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d completed", n, QueueDepth)
		}
	}
	for i, op := range got[:n] {
		if op.Tag != uint64(i) || op.Status != driver.InvalidSession {
			t.Fatalf("completion %d: tag %d status %s", i, op.Tag, op.Status)
		}
	}
	if n := q.Enqueue(ops[QueueDepth:]); n != 10 {
		t.Fatalf("after draining, enqueued %d of 10", n)
	}
	st := q.Stats()
	if st.Enqueued != QueueDepth+10 || st.Dequeued != QueueDepth || st.EnqueueErrors != 1 {
		t.Fatalf("stats %+v", st)
	}
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	if _, err := d.NewSession(driver.SessionConfig{Action: driver.LookasideCrypto, Transform: tr}); !errors.Is(err, driver.ErrUnsupported) {
		t.Fatalf("session for a transform the driver lacks: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-d.Events(); ok {
		t.Fatal("events channel open after Close")
	}
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after Close", before, runtime.NumGoroutine())
		}
	}
}
