package offload_test

import (
	"errors"
	"testing"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// resumed makes, on a fresh engine (a restarted gateway), the SA that old
// was, with its keys, resuming r.
func resumed(t *testing.T, old *side, r offload.Resume) (*side, error) {
	t.Helper()
	n := newSide(t)
	c := old.sa.Config()
	c.CipherKey, c.AuthKey = old.keys[0].Clone(), old.keys[1].Clone()
	sa, err := n.e.ResumeSA(c, r)
	n.sa, n.keys = sa, old.keys
	return n, err
}

// TestResumeOutboundPastCheckpoint is issue 11's restart: the gateway sent
// 100 packets, checkpointed, sent 50 more, and was killed. Started again
// from the checkpoint with a margin, its first packet is accepted by the
// peer, which had seen all 150; started again from 1, as before, every
// packet was a replay.
func TestResumeOutboundPastCheckpoint(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes128-hmac-sha256")
	o := pairOpts{window: offload.DefaultReplayWindow}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	send := func(from *side, n int) (last uint32) {
		for i := range n {
			w := encap(t, from, inner(o, 40, byte(i)))
			if _, drop := decap(b, w); drop != offload.NotDropped {
				t.Fatalf("seq %d dropped: %v", wireSeq(w), drop)
			}
			last = wireSeq(w)
		}
		return last
	}
	send(a, 100)
	cp := a.sa.Snapshot()
	if cp.Seq != 100 || cp.Used.Packets != 100 {
		t.Fatalf("snapshot %+v, want seq 100 after 100 packets", cp)
	}
	if last := send(a, 50); last != 150 {
		t.Fatalf("peer saw up to %d", last)
	}

	// As before issue 11: a new SA starts at 1 and the peer drops it.
	fresh := newSide(t)
	c := a.sa.Config()
	c.CipherKey, c.AuthKey = a.keys[0].Clone(), a.keys[1].Clone()
	var err error
	if fresh.sa, err = fresh.e.AddSA(c); err != nil {
		t.Fatal(err)
	}
	w := encap(t, fresh, inner(o, 40, 1))
	if _, drop := decap(b, w); drop != offload.DropReplay {
		t.Fatalf("a restart from 1: got %v, want the replay drop of issue 11", drop)
	}

	const margin = 4096
	r, err := resumed(t, a, offload.Resume{After: cp.Seq + margin, Used: cp.Used})
	if err != nil {
		t.Fatal(err)
	}
	w = encap(t, r, inner(o, 40, 2))
	if got := uint64(wireSeq(w)); got != cp.Seq+margin+1 {
		t.Fatalf("first resumed packet carries %d, want checkpoint %d + margin %d + 1", got, cp.Seq, margin)
	}
	if _, drop := decap(b, w); drop != offload.NotDropped {
		t.Fatalf("resumed packet dropped by the peer: %v", drop)
	}
	if b.sa.Seq() != cp.Seq+margin+1 {
		t.Fatalf("peer's top %d", b.sa.Seq())
	}
	if got := r.sa.Counters().Packets.Load(); got != 101 {
		t.Fatalf("resumed SA counts %d packets, want the old 100 + 1", got)
	}
}

// TestResumeInboundWindow: an inbound SA resumed from a snapshot refuses
// what the old one had verified and what lies below the window, and takes
// what it had not seen and what is new.
func TestResumeInboundWindow(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes256-gcm16")
	o := pairOpts{window: 64}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	wires := map[uint32][]byte{}
	for i := 1; i <= 260; i++ {
		w := encap(t, a, inner(o, 20, byte(i)))
		wires[wireSeq(w)] = w
	}
	for seq := uint32(1); seq <= 200; seq++ {
		if seq == 150 || seq == 190 {
			continue // lost on the way
		}
		if _, drop := decap(b, wires[seq]); drop != offload.NotDropped {
			t.Fatalf("seq %d: %v", seq, drop)
		}
	}
	snap := b.sa.Snapshot()
	if snap.Replay.Top != 200 || snap.Replay.Size != 64 || snap.Replay.Has(150) || !snap.Replay.Has(151) {
		t.Fatalf("snapshot %+v", snap.Replay)
	}
	nb, err := resumed(t, b, offload.Resume{Replay: snap.Replay})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		seq  uint32
		want offload.DropReason
	}{
		{200, offload.DropReplay},
		{151, offload.DropReplay},
		{150, offload.NotDropped},
		{150, offload.DropReplay},
		{190, offload.NotDropped},
		{136, offload.DropOutsideWindow},
		{1, offload.DropOutsideWindow},
		{201, offload.NotDropped},
		{260, offload.NotDropped},
		{201, offload.DropReplay},
	}
	for _, s := range steps {
		if _, drop := decap(nb, wires[s.seq]); drop != s.want {
			t.Fatalf("resumed inbound, seq %d: got %v, want %v", s.seq, drop, s.want)
		}
	}
}

// TestResumeESN: with extended sequence numbers a resumed outbound SA
// crosses into the next 2^32 subspace and the peer infers the high bits
// (RFC 4303 Appendix A2.2): the ICV, which covers them, verifies.
func TestResumeESN(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes128-hmac-sha")
	o := pairOpts{window: offload.DefaultReplayWindow, esn: true}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	start := uint64(1<<32 - 100)
	offload.SetSeq(a.sa, start)
	offload.SetReplayTop(b.sa, start)
	for i := range 10 {
		if _, drop := decap(b, encap(t, a, inner(o, 30, byte(i)))); drop != offload.NotDropped {
			t.Fatalf("before: %v", drop)
		}
	}
	cp := a.sa.Snapshot()
	const margin = 1 << 20
	r, err := resumed(t, a, offload.Resume{After: cp.Seq + margin})
	if err != nil {
		t.Fatal(err)
	}
	w := encap(t, r, inner(o, 30, 99))
	if _, drop := decap(b, w); drop != offload.NotDropped {
		t.Fatalf("resumed across the subspace: %v", drop)
	}
	if want := cp.Seq + margin + 1; b.sa.Seq() != want || want>>32 != 1 {
		t.Fatalf("peer's top %#x, want %#x in the second subspace", b.sa.Seq(), want)
	}

	in := b.sa.Snapshot()
	nb, err := resumed(t, b, offload.Resume{Replay: in.Replay})
	if err != nil {
		t.Fatal(err)
	}
	if _, drop := decap(nb, w); drop != offload.DropReplay {
		t.Fatalf("resumed ESN inbound took a replay: %v", drop)
	}
	if _, drop := decap(nb, encap(t, r, inner(o, 30, 100))); drop != offload.NotDropped {
		t.Fatalf("resumed ESN inbound refused a new packet: %v", drop)
	}
}

// TestResumeLimits: without ESN the 32-bit space bounds where an SA may
// resume; a used-up hard lifetime refuses the SA.
func TestResumeLimits(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	a, b := newSide(t), newSide(t)
	pair(t, tr, pairOpts{life: ipsec.Limits{Hard: ipsec.Lifetime{Packets: 100}}}, a, b)
	if _, err := resumed(t, a, offload.Resume{After: 1<<32 - 1}); !errors.Is(err, offload.ErrSeqExhausted) {
		t.Fatalf("resume past 2^32-1 without ESN: %v", err)
	}
	r, err := resumed(t, a, offload.Resume{After: 1<<32 - 2})
	if err != nil {
		t.Fatal(err)
	}
	if w := encap(t, r, inner(pairOpts{}, 10, 1)); wireSeq(w) != 1<<32-1 {
		t.Fatalf("last number %d", wireSeq(w))
	}
	if _, err := resumed(t, a, offload.Resume{Used: ipsec.Lifetime{Packets: 100}}); !errors.Is(err, offload.ErrBadSA) {
		t.Fatalf("resume with the hard lifetime used: %v", err)
	}
	if _, err := resumed(t, b, offload.Resume{Replay: ipsec.ReplayState{Top: 1 << 33, Size: 64}}); !errors.Is(err, offload.ErrBadSA) {
		t.Fatalf("inbound top above 2^32 without ESN: %v", err)
	}
}
