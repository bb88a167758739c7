package ike

import (
	"crypto/rand"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestWorkSlotsBound: eight goroutines wanting two places get them two at
// a time, and all finish.
func TestWorkSlotsBound(t *testing.T) {
	w := newWorkSlots(2)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			w.take()
			time.Sleep(5 * time.Millisecond)
			w.leave()
		})
	}
	wg.Wait()
	if p, n := w.peak.Load(), w.done.Load(); p != 2 || n != 8 {
		t.Errorf("peak %d of 8 runs (%d done), want 2 at a time", p, n)
	}
	if b := w.busy.Load(); b != 0 {
		t.Errorf("%d places still taken", b)
	}
}

// TestKeyExchangeTakesTurns: a Diffie-Hellman key pair and its shared
// secret each run in publicKeyWork's turn, which leaves a CPU free.
func TestKeyExchangeTakesTurns(t *testing.T) {
	g, _ := LookupGroup(14)
	before := publicKeyWork.done.Load()
	a, err := g.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Shared(b.Public); err != nil {
		t.Fatal(err)
	}
	if n := publicKeyWork.done.Load() - before; n < 3 {
		t.Errorf("%d of 3 public-key operations took a place", n)
	}
	if c := cap(publicKeyWork.places); c != max(1, runtime.GOMAXPROCS(0)-1) {
		t.Errorf("%d places for public-key work", c)
	}
}
