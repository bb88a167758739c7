package ipsec

// ReplayState is an inbound SA's anti-replay state at one instant (RFC 4303
// §3.4.3 and Appendix A): the highest sequence number verified so far and
// which of the Size numbers at and below it have been seen. It is how the
// state leaves one data path (a snapshot, a checkpoint) and enters another
// (a resumed SA), independent of how either keeps its bitmap.
//
// The zero value is a disabled window with nothing seen. A ReplayState is a
// plain value: not safe for concurrent mutation.
type ReplayState struct {
	// Top is the highest sequence number verified, 64 bits wide with
	// extended sequence numbers (RFC 4303 §2.2.1); 0: none yet.
	Top uint64
	// Size is the window in packets; 0 turns the check off.
	Size int
	// Seen has bit i (Seen[i/64] & 1<<(i%64)) set when Top−i has been
	// verified, for i < Size. It holds (Size+63)/64 words; fewer words
	// mean the missing ones are zero.
	Seen []uint64
}

// Has reports whether seq has been verified, as far as the window
// remembers: numbers above Top have not; numbers below the window are
// reported as seen, since a receiver must refuse them (RFC 4303 §3.4.3).
func (r ReplayState) Has(seq uint64) bool {
	if seq > r.Top {
		return false
	}
	i := r.Top - seq
	if r.Size == 0 {
		return false
	}
	if i >= uint64(r.Size) {
		return true
	}
	w := i / 64
	return w < uint64(len(r.Seen)) && r.Seen[w]&(1<<(i%64)) != 0
}

// Set marks seq as verified, moving Top and the window up when seq is
// above Top. Numbers below the window are ignored. For building states in
// tests and importers; data paths keep their own bitmaps.
func (r *ReplayState) Set(seq uint64) {
	if r.Size <= 0 {
		r.Top = max(r.Top, seq)
		return
	}
	words := (r.Size + 63) / 64
	if len(r.Seen) < words {
		r.Seen = append(r.Seen, make([]uint64, words-len(r.Seen))...)
	}
	if seq > r.Top {
		shiftUp(r.Seen, seq-r.Top)
		r.Top = seq
	}
	i := r.Top - seq
	if i < uint64(r.Size) {
		r.Seen[i/64] |= 1 << (i % 64)
	}
	if tail := r.Size % 64; tail != 0 {
		r.Seen[words-1] &= 1<<tail - 1
	}
}

// shiftUp moves every bit of the little-endian bitmap b up by n places,
// dropping those that fall off the end.
func shiftUp(b []uint64, n uint64) {
	if n >= uint64(len(b))*64 {
		clear(b)
		return
	}
	words, bits := int(n/64), n%64
	for i := len(b) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = b[j] << bits
			if bits != 0 && j > 0 {
				v |= b[j-1] >> (64 - bits)
			}
		}
		b[i] = v
	}
}
