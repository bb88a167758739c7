package offload

import (
	"errors"
	"fmt"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// This file is what an SA's resumption needs: a consistent snapshot of its
// sequence state for a checkpoint, and an SA made from a checkpoint that
// carries on where the old one left off (a restarted gateway, a cluster
// node taking over a tunnel group).

// ErrSeqExhausted is returned by ResumeSA when the outbound sequence number
// to resume past leaves no number to send (RFC 4303 §3.3.3): the SA must be
// rekeyed instead.
var ErrSeqExhausted = errors.New("offload: sequence number space exhausted")

// SeqSnapshot is an SA's sequence state and usage at one instant.
type SeqSnapshot struct {
	// Seq is, for an outbound SA, the last sequence number handed out
	// (64 bits with ESN): packets carrying it may still be in the
	// crypto queue, none carries a higher one.
	Seq uint64
	// Replay is an inbound SA's anti-replay state.
	Replay ipsec.ReplayState
	// Used is the lifetime used so far: age, bytes and packets.
	Used ipsec.Lifetime
}

// Snapshot returns the SA's sequence state and usage. For an inbound SA it
// holds the replay lock while it copies the window, so the top and the
// bitmap belong to the same instant.
func (sa *SA) Snapshot() SeqSnapshot {
	s := SeqSnapshot{Used: ipsec.Lifetime{
		Time:    time.Duration(nanotime() - sa.born),
		Bytes:   sa.stats.Bytes.Load(),
		Packets: sa.stats.Packets.Load(),
	}}
	if sa.cfg.Direction == ipsec.Outbound {
		s.Seq = sa.seq.Load()
		return s
	}
	sa.mu.Lock()
	s.Replay = sa.replay.export()
	sa.mu.Unlock()
	return s
}

// Keys returns copies of the SA's keys, for a checkpoint that seals them
// at once and zeroes the copies. A deleted SA's keys are gone: ErrNoSA.
func (sa *SA) Keys() (cipher, auth ipsec.Key, err error) {
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if sa.state.Load()&stateDeleted != 0 {
		return nil, nil, fmt.Errorf("%w %s: deleted", ErrNoSA, sa.ID())
	}
	return sa.cfg.CipherKey.Clone(), sa.cfg.AuthKey.Clone(), nil
}

// Resume is where a resumed SA starts.
type Resume struct {
	// After is, for an outbound SA, the last sequence number to count as
	// used: the first packet carries After+1. The caller puts it past the
	// old SA's checkpoint by a margin larger than what the old SA could
	// have sent since.
	After uint64
	// Replay is an inbound SA's anti-replay state; a window of another
	// size than the SA's keeps the bits that fit.
	Replay ipsec.ReplayState
	// Used is the lifetime the old SA had used; the soft and hard limits
	// count from the old SA's start.
	Used ipsec.Lifetime
}

// ResumeSA adds an SA, as AddSA does, whose state continues r: its first
// outbound packet carries r.After+1; its inbound window refuses what r
// records as seen or below the window, and accepts the rest. Sequence
// numbers are 64 bits wide with c.ESN and 32 bits without (RFC 4303
// §2.2.1); ErrSeqExhausted says that no number is left.
func (e *Engine) ResumeSA(c SAConfig, r Resume) (*SA, error) {
	return e.addSA(c, func(sa *SA) error {
		if err := sa.resume(r); err != nil {
			sa.cfg.CipherKey.Zero()
			sa.cfg.AuthKey.Zero()
			return err
		}
		return nil
	})
}

// resume sets the state of an SA that no packet has reached yet.
func (sa *SA) resume(r Resume) error {
	limit := uint64(1<<32 - 1)
	if sa.cfg.ESN {
		limit = 1<<64 - 1
	}
	if sa.cfg.Direction == ipsec.Outbound {
		if r.After >= limit {
			return fmt.Errorf("%w: %s resumes past %d (ESN %v)", ErrSeqExhausted, sa.ID(), r.After, sa.cfg.ESN)
		}
		sa.seq.Store(r.After)
	} else {
		if r.Replay.Top > limit {
			return fmt.Errorf("%w: replay window top %d needs ESN", ErrBadSA, r.Replay.Top)
		}
		sa.replay.load(r.Replay)
	}
	h, u := &sa.cfg.Limits.Hard, r.Used
	switch {
	case h.Time > 0 && u.Time >= h.Time,
		h.Bytes > 0 && u.Bytes >= h.Bytes,
		h.Packets > 0 && u.Packets >= h.Packets:
		return fmt.Errorf("%w: %s has used its hard lifetime", ErrBadSA, sa.ID())
	}
	sa.stats.Packets.Store(u.Packets)
	sa.stats.Bytes.Store(u.Bytes)
	sa.born -= int64(u.Time)
	if sa.softAt != 0 {
		sa.softAt -= int64(u.Time)
	}
	if sa.hardAt != 0 {
		sa.hardAt -= int64(u.Time)
	}
	return nil
}

// export returns the window as an ipsec.ReplayState; the caller serialises
// it with update.
func (w *replayWindow) export() ipsec.ReplayState {
	top := w.top.Load()
	r := ipsec.ReplayState{Top: top, Size: int(w.size)}
	if w.size == 0 {
		return r
	}
	r.Seen = make([]uint64, (w.size+63)/64)
	mask := uint64(len(w.bitmap) - 1)
	for i := uint64(0); i < w.size && i < top; {
		seq := top - i
		word := w.bitmap[(seq>>6)&mask].Load()
		if word == 0 { // skip to the ring word below
			i += seq&63 + 1
			continue
		}
		if word&(1<<(seq&63)) != 0 {
			r.Seen[i/64] |= 1 << (i % 64)
		}
		i++
	}
	return r
}

// load sets a window that no packet has reached yet to r, keeping the
// numbers that fit its size.
func (w *replayWindow) load(r ipsec.ReplayState) {
	w.top.Store(r.Top)
	if w.size == 0 {
		return
	}
	// Numbers below r's window count as seen: r's SA would have refused
	// them, so a larger window must too.
	mask := uint64(len(w.bitmap) - 1)
	for i := uint64(0); i < w.size && i < r.Top; i++ {
		if r.Has(r.Top - i) {
			seq := r.Top - i
			word := &w.bitmap[(seq>>6)&mask]
			word.Store(word.Load() | 1<<(seq&63))
		}
	}
}
