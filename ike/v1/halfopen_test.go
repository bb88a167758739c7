package v1

import (
	"testing"
	"time"
)

// TestPairHalfOpenCountsOpening: the bound on phase 1 negotiations peers
// may have open counts only those not complete. B, allowed one at a
// time, holds t1's established IKE SA and still answers A's phase 1 for
// t2 (a responder with 20,000 established IKE SAs refused every new one).
func TestPairHalfOpenCountsOpening(t *testing.T) {
	t.Parallel()
	_, a, b, w := hubAndTwoAddresses(t, func(d *Daemon) {
		d.mu.Lock()
		d.maxOpening = 1
		d.mu.Unlock()
	})
	for _, name := range []string{"t1", "t2"} {
		a.d.Acquire(name)
		w.waitEvent(t, b.lis, "up", name, 10*time.Second)
	}
	b.d.mu.Lock()
	opening, inits := b.d.opening, len(b.d.inits)
	b.d.mu.Unlock()
	if opening != 0 || inits != 2 {
		t.Errorf("B counts %d phase 1 negotiations open and keeps %d responders, want 0 and 2", opening, inits)
	}
	a.d.Close()
	w.waitUntil(t, 10*time.Second, "B's IKE SAs deleted", func() bool { return len(b.d.Status().IKESAs) == 0 })
	b.d.mu.Lock()
	opening = b.d.opening
	b.d.mu.Unlock()
	if opening != 0 {
		t.Errorf("B counts %d phase 1 negotiations open after the deletes, want 0", opening)
	}
}
