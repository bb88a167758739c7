package lookaside

import (
	"bytes"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/selector"
)

// TestHoldQueue: packets are held in order up to the bounds, taken in
// bursts, and dropped when they have waited HoldTime or at once; an SA
// installed while packets are held stays marked until a take finds none.
func TestHoldQueue(t *testing.T) {
	var q holdQueue
	src, dst := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1")
	all := &outTable{sas: []saEntry{{width: tunnelWidth}}} // an SA of the tunnel's selectors
	t0 := time.Now()
	for i := range HoldPackets {
		if !q.hold([]byte{byte(i)}, src, dst, t0.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("packet %d refused below the bound", i)
		}
	}
	if q.hold([]byte{0xff}, src, dst, t0) {
		t.Fatalf("packet %d held over the bound of %d packets", HoldPackets+1, HoldPackets)
	}
	var held atomic.Bool
	q.await(&held)
	if !held.Load() {
		t.Fatal("an SA installed with packets held is not marked")
	}
	var got []byte
	for {
		b := q.take(5, all)
		if b == nil {
			break
		}
		if len(b) > 5 {
			t.Fatalf("took %d, want at most 5", len(b))
		}
		for _, p := range b {
			got = append(got, p.b...)
		}
		if !held.Load() {
			t.Fatal("unmarked before a take found nothing")
		}
	}
	for i, b := range got {
		if b != byte(i) || len(got) != HoldPackets {
			t.Fatalf("released %v, want 0 to %d in order", got, HoldPackets-1)
		}
	}
	if held.Load() || q.bytes != 0 {
		t.Fatalf("marked %v, %d bytes after the release", held.Load(), q.bytes)
	}
	var late atomic.Bool
	if q.await(&late); late.Load() {
		t.Fatal("an SA installed with nothing held is marked")
	}
	if cap(q.pkts) != 0 {
		t.Fatalf("the emptied queue keeps an array of %d packets alive", cap(q.pkts))
	}

	big := bytes.Repeat([]byte{1}, 4000)
	n := 0
	for q.hold(big, src, dst, t0) {
		n++
	}
	if want := HoldBytes / 4000; n != want {
		t.Errorf("held %d packets of 4000 bytes, want %d (the bound of %d bytes)", n, want, HoldBytes)
	}
	if d := q.expire(t0.Add(HoldTime-time.Millisecond), false, nil); d != 0 {
		t.Errorf("expired %d packets before HoldTime", d)
	}
	if d := q.expire(t0.Add(HoldTime), false, nil); d != n || q.bytes != 0 {
		t.Errorf("expired %d of %d packets after HoldTime, %d bytes left", d, n, q.bytes)
	}
	q.hold([]byte{1}, src, dst, t0)
	if d := q.expire(time.Time{}, true, &outTable{}); d != 1 || q.take(1, all) != nil {
		t.Errorf("forced expiry dropped %d, want 1 and nothing left", d)
	}
}

// TestHoldQueueSelectors: a held packet leaves on the SA that covers it;
// one that no SA covers stays, in order, without holding up the others,
// and a failed negotiation drops only it.
func TestHoldQueueSelectors(t *testing.T) {
	p, e := testPath(t)
	a := netip.MustParseAddr
	src := a("198.51.100.1")
	now := time.Now()
	for i, dst := range []string{"203.0.113.200", "203.0.113.1", "203.0.113.201", "203.0.113.2"} {
		p.hold.hold([]byte{byte(i)}, src, a(dst), now)
	}
	narrow := testSA(t, e, 0x5001, ipsec.Outbound)
	p.add(narrow, selector.Of(pfx("198.51.100.0/24")), selector.Of(pfx("203.0.113.0/25")))
	got := p.hold.take(10, p.outs.Load())
	if len(got) != 2 || got[0].b[0] != 1 || got[1].b[0] != 3 || got[0].sa.sa != narrow || got[1].sa.sa != narrow {
		t.Fatalf("took %+v, want packets 1 and 3 on the /25's SA", got)
	}
	if got := p.hold.take(10, p.outs.Load()); got != nil {
		t.Fatalf("took %+v that no SA covers", got)
	}
	if len(p.hold.pkts) != 2 || p.hold.pkts[0].b[0] != 0 || p.hold.pkts[1].b[0] != 2 {
		t.Fatalf("left %+v, want packets 0 and 2 in order", p.hold.pkts)
	}
	p.hold.hold([]byte{4}, src, a("203.0.113.3"), now) // covered, not yet released
	p.DropHeld()
	if d := p.t.TX.Drops(offload.DropHoldFailed); d != 2 {
		t.Errorf("a failed negotiation dropped %d held packets, want the 2 no SA covers", d)
	}
	if got := p.hold.take(10, p.outs.Load()); len(got) != 1 || got[0].b[0] != 4 {
		t.Errorf("after the failure took %+v, want packet 4", got)
	}
}
