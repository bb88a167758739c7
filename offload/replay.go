package offload

import "sync/atomic"

// replayWindow is an inbound SA's anti-replay window: a sliding bitmap of
// 64-bit words as in RFC 6479, with the high-order bits of extended sequence
// numbers inferred as in RFC 4303 Appendix A2.2.
//
// The zero value is a disabled window. The pre-check (infer, check) may run
// concurrently with anything: it only loads. update must be serialised by
// the caller (the SA's mutex); it stores atomically so that pre-checks see
// whole words.
type replayWindow struct {
	size   uint64          // window size in packets; 0 turns the check off
	top    atomic.Uint64   // highest sequence number verified so far
	bitmap []atomic.Uint64 // ring of words; len is a power of two
}

// noReplayWindow is every outbound SA's: empty, read only (Seq, Snapshot).
var noReplayWindow replayWindow

// MaxReplayWindow is the largest anti-replay window an SA may have.
const MaxReplayWindow = 1 << 16

// DefaultReplayWindow is the anti-replay window used unless configured.
const DefaultReplayWindow = 1024

func newReplayWindow(size int) *replayWindow {
	if size <= 0 {
		return &replayWindow{}
	}
	words := 1
	// One spare word, so that the word being filled never overlaps the
	// oldest word still inside the window (RFC 6479 §3).
	for words*64 < size+64 {
		words <<= 1
	}
	return &replayWindow{size: uint64(size), bitmap: make([]atomic.Uint64, words)}
}

// infer returns the 64-bit sequence number whose low 32 bits arrived on the
// wire (RFC 4303 Appendix A2.2). Without ESN it is the wire value. ok is
// false for a number from before the first subspace.
func (w *replayWindow) infer(lo uint32, esn bool) (seq uint64, ok bool) {
	if !esn {
		return uint64(lo), true
	}
	win := w.size
	if win == 0 {
		win = 1 << 31 // no window: nearest to the top
	}
	top := w.top.Load()
	tl, th := uint32(top), uint32(top>>32)
	var hi uint32
	if uint64(tl) >= win-1 {
		// Case A: the window lies within one subspace.
		hi = th
		if uint64(lo) < uint64(tl)-win+1 {
			hi = th + 1
		}
	} else {
		// Case B: the window spans two subspaces.
		hi = th
		if lo >= tl-uint32(win)+1 {
			if th == 0 {
				return 0, false
			}
			hi = th - 1
		}
	}
	return uint64(hi)<<32 | uint64(lo), true
}

// check is the pre-check done before the ICV: it reports why seq must be
// dropped, or NotDropped. It changes nothing.
func (w *replayWindow) check(seq uint64) DropReason {
	if seq == 0 {
		return DropOutsideWindow // 0 is never sent (RFC 4303 §3.3.3)
	}
	top := w.top.Load()
	if w.size == 0 || seq > top {
		return NotDropped
	}
	if top-seq >= w.size {
		return DropOutsideWindow
	}
	mask := uint64(len(w.bitmap) - 1)
	if w.bitmap[(seq>>6)&mask].Load()&(1<<(seq&63)) != 0 {
		return DropReplay
	}
	return NotDropped
}

// update records seq once its ICV has verified. It checks again, because
// another packet with the same number may have verified in between. The
// caller serialises updates.
func (w *replayWindow) update(seq uint64) DropReason {
	if r := w.check(seq); r != NotDropped {
		return r
	}
	top := w.top.Load()
	if w.size == 0 {
		w.top.Store(max(top, seq))
		return NotDropped
	}
	mask := uint64(len(w.bitmap) - 1)
	if seq > top {
		cur, idx := top>>6, seq>>6
		n := min(idx-cur, uint64(len(w.bitmap)))
		for i := uint64(1); i <= n; i++ {
			w.bitmap[(cur+i)&mask].Store(0)
		}
		w.top.Store(seq)
	}
	word := &w.bitmap[(seq>>6)&mask]
	word.Store(word.Load() | 1<<(seq&63))
	return NotDropped
}
