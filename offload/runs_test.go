package offload_test

import (
	"testing"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// TestBurstRuns: an outbound burst is prepared in runs of packets with one
// SA (A A B B A A A A, the second A of the last run malformed, then a packet
// without an SA). Each SA's sequence numbers go up by one a packet sent, in
// burst order, its counters are exact and every packet decapsulates on the
// peer.
func TestBurstRuns(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	o := pairOpts{window: 64}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b) // SA A: SPI 0x1000
	ck, _ := keysFor(tr, 0x42)
	cB := offload.SAConfig{SPI: 0x2000, Transform: tr, Src: v4a, Dst: v4b, CipherKey: ck, ReplayWindow: 64}
	cB.Direction = ipsec.Outbound
	saB, err := a.e.AddSA(cB)
	if err != nil {
		t.Fatal(err)
	}
	cB.Direction = ipsec.Inbound
	if _, err := b.e.AddSA(cB); err != nil {
		t.Fatal(err)
	}
	sas := []*offload.SA{a.sa, a.sa, saB, saB, a.sa, a.sa, a.sa, a.sa, nil}
	const bad = 5 // its total length says more than the buffer holds
	var burst []*offload.Packet
	var want [2]uint64 // inner bytes by SA
	for i, sa := range sas {
		in := inner(o, 100+i, byte(i))
		pk := packet(in)
		pk.SA = sa
		switch {
		case i == bad:
			pk.Buf.Bytes()[2] = 0xff
		case sa == a.sa:
			want[0] += uint64(len(in))
		case sa == saB:
			want[1] += uint64(len(in))
		}
		burst = append(burst, pk)
	}
	a.p.Encap(burst)
	wantSeq := map[*offload.SA]uint32{}
	for i, pk := range burst {
		switch {
		case sas[i] == nil:
			if pk.Drop != offload.DropNoSA {
				t.Errorf("packet %d without an SA: %v", i, pk.Drop)
			}
			continue
		case i == bad:
			if pk.Drop != offload.DropMalformed {
				t.Errorf("malformed packet %d: %v", i, pk.Drop)
			}
			continue
		case pk.Drop != offload.NotDropped:
			t.Fatalf("packet %d: %v", i, pk.Drop)
		}
		wire := append([]byte(nil), pk.Buf.Bytes()...)
		wantSeq[sas[i]]++
		if got := wireSeq(wire); got != wantSeq[sas[i]] {
			t.Errorf("packet %d: sequence number %d, want %d", i, got, wantSeq[sas[i]])
		}
		if _, drop := decap(b, wire); drop != offload.NotDropped {
			t.Errorf("packet %d does not decapsulate: %v", i, drop)
		}
	}
	for i, sa := range []*offload.SA{a.sa, saB} {
		c := sa.Counters()
		if c.Packets.Load() != uint64(wantSeq[sa]) || c.Bytes.Load() != want[i] {
			t.Errorf("SA %d: %d packets, %d bytes; want %d, %d", i, c.Packets.Load(), c.Bytes.Load(), wantSeq[sa], want[i])
		}
	}
}

// TestBurstRunHardLimit: a hard packet limit reached in the middle of a
// run stops the run there: the packet that reaches it is sent, the rest of
// the burst is refused, and the SA has carried exactly its limit.
func TestBurstRunHardLimit(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	o := pairOpts{window: 64, life: ipsec.Limits{Soft: ipsec.Lifetime{Packets: 2}, Hard: ipsec.Lifetime{Packets: 3}}}
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	var burst []*offload.Packet
	for i := range 6 {
		pk := packet(inner(o, 50, byte(i)))
		pk.SA = a.sa
		burst = append(burst, pk)
	}
	a.p.Encap(burst)
	for i, pk := range burst {
		want := offload.NotDropped
		if i >= 3 {
			want = offload.DropLifetime
		}
		if pk.Drop != want {
			t.Errorf("packet %d: %v, want %v", i, pk.Drop, want)
		}
	}
	if n := a.sa.Counters().Packets.Load(); n != 3 {
		t.Errorf("SA carried %d packets, want 3", n)
	}
	kinds := map[offload.EventKind]int{}
	for _, ev := range a.events() {
		kinds[ev.Kind]++
	}
	if len(kinds) != 2 || kinds[offload.EventSoftExpire] != 1 || kinds[offload.EventHardExpire] != 1 || a.sa.State() != "expired" {
		t.Errorf("events %+v, state %s", a.events(), a.sa.State())
	}
}
