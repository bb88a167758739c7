package lookaside

import (
	"bytes"
	"testing"
	"time"
)

// TestHoldQueue: packets are held in order up to the bounds, taken in
// bursts, and dropped when the oldest has waited HoldTime or at once;
// the queue holds while it has packets or until a take finds none.
func TestHoldQueue(t *testing.T) {
	var q holdQueue
	t0 := time.Now()
	for i := range HoldPackets {
		if !q.hold([]byte{byte(i)}, t0.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("packet %d refused below the bound", i)
		}
	}
	if q.hold([]byte{0xff}, t0) {
		t.Fatalf("packet %d held over the bound of %d packets", HoldPackets+1, HoldPackets)
	}
	if !q.holding.Load() {
		t.Fatal("not holding with packets held")
	}
	var got []byte
	for {
		b := q.take(5)
		if b == nil {
			break
		}
		if len(b) > 5 {
			t.Fatalf("took %d, want at most 5", len(b))
		}
		for _, p := range b {
			got = append(got, p...)
		}
		if !q.holding.Load() {
			t.Fatal("stopped holding before a take found nothing")
		}
	}
	for i, b := range got {
		if b != byte(i) || len(got) != HoldPackets {
			t.Fatalf("released %v, want 0 to %d in order", got, HoldPackets-1)
		}
	}
	if q.holding.Load() || q.bytes != 0 {
		t.Fatalf("holding %v, %d bytes after the release", q.holding.Load(), q.bytes)
	}
	if cap(q.pkts) != 0 {
		t.Fatalf("the emptied queue keeps an array of %d packets alive", cap(q.pkts))
	}

	big := bytes.Repeat([]byte{1}, 4000)
	n := 0
	for q.hold(big, t0) {
		n++
	}
	if want := HoldBytes / 4000; n != want {
		t.Errorf("held %d packets of 4000 bytes, want %d (the bound of %d bytes)", n, want, HoldBytes)
	}
	if d := q.expire(t0.Add(HoldTime-time.Millisecond), false); d != 0 {
		t.Errorf("expired %d packets before HoldTime", d)
	}
	if d := q.expire(t0.Add(HoldTime), false); d != n || q.holding.Load() {
		t.Errorf("expired %d of %d packets after HoldTime, holding %v", d, n, q.holding.Load())
	}
	q.hold([]byte{1}, t0)
	if d := q.expire(time.Time{}, true); d != 1 || q.take(1) != nil {
		t.Errorf("forced expiry dropped %d, want 1 and nothing left", d)
	}
}
