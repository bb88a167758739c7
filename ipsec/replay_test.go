package ipsec

import (
	"math/rand/v2"
	"testing"
)

// TestReplayStateModel: Set and Has agree with a plain set of numbers and
// the RFC 4303 §3.4.3 rule (refuse what is below the window), for window
// sizes that do and do not fill their last word.
func TestReplayStateModel(t *testing.T) {
	for _, size := range []int{1, 32, 64, 100, 1024} {
		rng := rand.New(rand.NewPCG(uint64(size), 7))
		r := ReplayState{Size: size}
		seen := map[uint64]bool{}
		top := uint64(0)
		for range 5000 {
			seq := top + uint64(rng.IntN(3*size)) - uint64(min(top, uint64(2*size)))
			if seq == 0 {
				continue
			}
			r.Set(seq)
			if seq > top || top-seq < uint64(size) {
				seen[seq] = true
			}
			top = max(top, seq)
			probe := top - uint64(rng.IntN(size+2))
			want := seen[probe] || top-probe >= uint64(size)
			if probe > top {
				want = false
			}
			if got := r.Has(probe); got != want {
				t.Fatalf("size %d top %d: Has(%d) = %v, want %v", size, top, probe, got, want)
			}
		}
		if r.Has(top+1) || !r.Has(top) {
			t.Fatalf("size %d: top edges", size)
		}
		if len(r.Seen) != (size+63)/64 {
			t.Fatalf("size %d: %d words", size, len(r.Seen))
		}
	}
}

func TestReplayStateDisabled(t *testing.T) {
	var r ReplayState
	r.Set(10)
	if r.Top != 10 || r.Has(5) || r.Has(10) {
		t.Fatalf("a disabled window remembers nothing: %+v", r)
	}
}
