package offload_test

import (
	"testing"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// TestLifetimePackets: soft at the 3rd packet, hard at the 5th; the 5th is
// still delivered (the seed: a packet in flight is finished), the 6th is not.
func TestLifetimePackets(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	o := pairOpts{window: 64, life: ipsec.Limits{Soft: ipsec.Lifetime{Packets: 3}, Hard: ipsec.Lifetime{Packets: 5}}}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	for i := 1; i <= 5; i++ {
		w := encap(t, a, inner(o, 10, byte(i)))
		if _, drop := decap(b, w); drop != offload.NotDropped {
			t.Fatalf("packet %d: %v", i, drop)
		}
		evs := a.events()
		switch {
		case i < 3 && len(evs) != 0, i >= 3 && i < 5 && len(evs) != 1, i == 5 && len(evs) != 2:
			t.Fatalf("after packet %d: events %+v", i, evs)
		}
	}
	for _, s := range []*side{a, b} {
		evs := s.events()
		if len(evs) != 2 || evs[0].Kind != offload.EventSoftExpire || evs[1].Kind != offload.EventHardExpire ||
			evs[0].Cause != offload.CausePackets || evs[1].SA != s.sa {
			t.Fatalf("events %+v", evs)
		}
	}
	pk := packet(inner(o, 10, 6))
	pk.SA = a.sa
	a.p.Encap([]*offload.Packet{pk})
	if pk.Drop != offload.DropLifetime || a.sa.State() != "expired" {
		t.Fatalf("6th packet: %v, state %s", pk.Drop, a.sa.State())
	}
}

// TestLifetimeBytes: limits by volume count inner bytes; the packet that
// crosses the hard limit is finished.
func TestLifetimeBytes(t *testing.T) {
	tr, _ := transform.Lookup("esp-3des-hmac-sha")
	o := pairOpts{window: 64, life: ipsec.Limits{Soft: ipsec.Lifetime{Bytes: 1000}, Hard: ipsec.Lifetime{Bytes: 2000}}}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	n := 0
	for i := 0; ; i++ {
		pk := packet(inner(o, 400, byte(i)))
		pk.SA = a.sa
		a.p.Encap([]*offload.Packet{pk})
		if pk.Drop != offload.NotDropped {
			if pk.Drop != offload.DropLifetime {
				t.Fatal(pk.Drop)
			}
			break
		}
		n++
	}
	// 428-byte packets: the 5th crosses 2000 and is sent; the 6th is not.
	if n != 5 {
		t.Fatalf("%d packets sent before the hard limit, want 5", n)
	}
	evs := a.events()
	if len(evs) != 2 || evs[0].Cause != offload.CauseBytes || evs[1].Kind != offload.EventHardExpire {
		t.Fatalf("events %+v", evs)
	}
}

// TestLifetimeAge: an idle SA's age limits fire from Sweep; a packet after
// the hard age is dropped.
func TestLifetimeAge(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes256-gcm16")
	o := pairOpts{window: 64, life: ipsec.Limits{Soft: ipsec.Lifetime{Time: 20 * time.Millisecond}, Hard: ipsec.Lifetime{Time: 60 * time.Millisecond}}}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	encap(t, a, inner(o, 10, 1))
	time.Sleep(30 * time.Millisecond)
	a.e.Sweep()
	if evs := a.events(); len(evs) != 1 || evs[0].Kind != offload.EventSoftExpire || evs[0].Cause != offload.CauseAge {
		t.Fatalf("after soft age: %+v", evs)
	}
	if !a.sa.Usable() {
		t.Fatal("unusable after the soft age")
	}
	time.Sleep(40 * time.Millisecond)
	pk := packet(inner(o, 10, 2))
	pk.SA = a.sa
	a.p.Encap([]*offload.Packet{pk})
	if pk.Drop != offload.DropLifetime {
		t.Fatalf("after hard age: %v", pk.Drop)
	}
	if evs := a.events(); len(evs) != 2 || evs[1].Kind != offload.EventHardExpire {
		t.Fatalf("events %+v", evs)
	}
}
