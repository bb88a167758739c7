package offload_test

import (
	"encoding/binary"
	"testing"

	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// wireSeq returns the 32-bit sequence number of an ESP packet over IPv4.
func wireSeq(wire []byte) uint32 { return binary.BigEndian.Uint32(wire[24:]) }

// TestReplayWindow checks the window edges and replays through the engine:
// with a window of 64, after sequence 100 has verified, 37 is inside the
// window and 36 is outside (RFC 4303 §3.4.3).
func TestReplayWindow(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes128-hmac-sha")
	o := pairOpts{window: 64}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	wires := map[uint32][]byte{}
	for i := 1; i <= 120; i++ {
		w := encap(t, a, inner(o, 10, byte(i)))
		wires[wireSeq(w)] = w
	}
	steps := []struct {
		seq  uint32
		want offload.DropReason
	}{
		{100, offload.NotDropped},
		{100, offload.DropReplay},
		{37, offload.NotDropped},
		{37, offload.DropReplay},
		{36, offload.DropOutsideWindow},
		{1, offload.DropOutsideWindow},
		{99, offload.NotDropped},
		{101, offload.NotDropped},
		{120, offload.NotDropped},
		{57, offload.NotDropped},
		{56, offload.DropOutsideWindow},
		{119, offload.NotDropped},
		{119, offload.DropReplay},
	}
	for _, s := range steps {
		if _, drop := decap(b, wires[s.seq]); drop != s.want {
			t.Fatalf("seq %d: got %v, want %v", s.seq, drop, s.want)
		}
	}
	c := b.sa.Counters()
	if c.Drops(offload.DropReplay) != 3 || c.Drops(offload.DropOutsideWindow) != 3 {
		t.Errorf("counted replay %d, outside %d; want 3 and 3", c.Drops(offload.DropReplay), c.Drops(offload.DropOutsideWindow))
	}
}

// TestReplayWindowUpdatedOnlyAfterICV: a forged packet with a high sequence
// number must not move the window (RFC 4303 Appendix A).
func TestReplayWindowUpdatedOnlyAfterICV(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	o := pairOpts{window: 32}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	first := encap(t, a, inner(o, 10, 1))
	forged := encap(t, a, inner(o, 10, 2))
	binary.BigEndian.PutUint32(forged[24:], 1000)
	if _, drop := decap(b, forged); drop != offload.DropICV {
		t.Fatalf("forged: %v", drop)
	}
	if _, drop := decap(b, first); drop != offload.NotDropped {
		t.Fatalf("seq 1 after forged 1000: %v (window moved before the ICV verified)", drop)
	}
}

// TestReplayOff: window 0 accepts replays.
func TestReplayOff(t *testing.T) {
	tr, _ := transform.Lookup("esp-3des-hmac-sha")
	o := pairOpts{window: 0}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	w := encap(t, a, inner(o, 10, 1))
	for range 3 {
		if _, drop := decap(b, w); drop != offload.NotDropped {
			t.Fatalf("window off: replay dropped: %v", drop)
		}
	}
}

// TestLargeWindowOutOfOrder delivers 4096 packets in reverse order into a
// 4096-packet window: all are accepted once, none twice.
func TestLargeWindowOutOfOrder(t *testing.T) {
	tr, _ := transform.Lookup("esp-null-hmac-sha")
	o := pairOpts{window: 4096}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	var wires [][]byte
	for i := range 4096 {
		wires = append(wires, encap(t, a, inner(o, 1, byte(i))))
	}
	for i := len(wires) - 1; i >= 0; i-- {
		if _, drop := decap(b, wires[i]); drop != offload.NotDropped {
			t.Fatalf("packet %d: %v", i+1, drop)
		}
	}
	for _, i := range []int{0, 2047, 4095} {
		if _, drop := decap(b, wires[i]); drop != offload.DropReplay {
			t.Fatalf("replay of %d: %v", i+1, drop)
		}
	}
}

// TestESNRollover sends packets across the 2^32 boundary with extended
// sequence numbers, for an AEAD and an HMAC transform and AH: the low bits
// on the wire wrap, the receiver infers the high bits (RFC 4303 Appendix
// A2) and the ICV, which covers them, verifies.
func TestESNRollover(t *testing.T) {
	for _, name := range []string{"esp-aes128-gcm16", "esp-aes128-hmac-sha256", "ah-hmac-sha"} {
		t.Run(name, func(t *testing.T) {
			tr, _ := transform.Lookup(name)
			o := pairOpts{window: 64, esn: true}
			a, b := newSide(t), newSide(t)
			pair(t, tr, o, a, b)
			offload.SetSeq(a.sa, 1<<32-4)
			offload.SetReplayTop(b.sa, 1<<32-10)
			var wires [][]byte
			for i := range 8 {
				wires = append(wires, encap(t, a, inner(o, 20, byte(i))))
			}
			// Deliver out of order around the boundary.
			for _, i := range []int{0, 5, 3, 7, 1, 2, 4, 6} {
				if _, drop := decap(b, wires[i]); drop != offload.NotDropped {
					t.Fatalf("packet %d (seq 2^32-3+%d): %v", i, i, drop)
				}
			}
			if got, want := b.sa.Seq(), uint64(1<<32+4); got != want {
				t.Errorf("receiver top %d, want %d", got, want)
			}
			if _, drop := decap(b, wires[4]); drop != offload.DropReplay {
				t.Errorf("replay across boundary: %v", drop)
			}
		})
	}
}

// TestSequenceOverflow: without ESN the outbound SA uses 2^32-1 last and
// then becomes unusable, saying so (RFC 4303 §3.3.3).
func TestSequenceOverflow(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	o := pairOpts{window: 64}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	offload.SetSeq(a.sa, 1<<32-3)
	encap(t, a, inner(o, 1, 1))
	last := encap(t, a, inner(o, 1, 2))
	if wireSeq(last) != 1<<32-1 {
		t.Fatalf("last seq %d", wireSeq(last))
	}
	pk := packet(inner(o, 1, 3))
	pk.SA = a.sa
	a.p.Encap([]*offload.Packet{pk})
	if pk.Drop != offload.DropSeqOverflow {
		t.Fatalf("after 2^32-1: %v", pk.Drop)
	}
	if a.sa.Usable() || a.sa.State() != "sequence-exhausted" {
		t.Errorf("state %q usable=%v", a.sa.State(), a.sa.Usable())
	}
	evs := a.events()
	if len(evs) != 1 || evs[0].Kind != offload.EventHardExpire || evs[0].Cause != offload.CauseSequence {
		t.Errorf("events %+v", evs)
	}
	if a.sa.Counters().Drops(offload.DropSeqOverflow) != 1 {
		t.Error("overflow drop not counted")
	}
}
