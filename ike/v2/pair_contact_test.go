package v2

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
)

// TestPairInitialContact: A restarts (a new daemon at its address, which
// knows nothing of the IKE SA B holds) and sets the tunnel up again; its
// first IKE SA with B carries INITIAL_CONTACT, and B drops the old IKE SA
// and its child SAs at once (§2.4), without waiting for DPD.
func TestPairInitialContact(t *testing.T) {
	p := cookiePair(t, 10, nil, nil)
	p.up(t, "t1")
	old := p.b.inst.Calls()
	oldSA := p.b.d.Status().IKESAs[0]
	// The restarted A.
	c := pairConfig(p.clk)
	c.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	a2 := p.addSide(t, c, addrA, 0x5000)
	a2.d.Acquire("t1")
	waitEvent(t, a2.lis, "up", "t1")
	waitFor(t, "B's old SAs gone", func() bool {
		_, gone0 := p.b.inst.SAs()[old[0].ID]
		_, gone1 := p.b.inst.SAs()[old[1].ID]
		return !gone0 && !gone1 && len(p.b.d.Status().IKESAs) == 1
	})
	st := p.b.d.Status()
	if st.IKESAs[0].ICookie == oldSA.ICookie || st.Tunnels[0].State != "up" {
		t.Fatalf("B after INITIAL_CONTACT: %+v", st)
	}
	checkKeysMatch(t, a2, p.b, "t1", "t1")
	if n := len(p.b.inst.SAs()); n != 2 {
		t.Fatalf("B has %d SAs", n)
	}
}

// TestPairNATRebinding: A sits behind a NAT (its tunnel forces ESP in
// UDP, so B takes it to be); its mapping changes to another address and
// port; B follows the first authenticated message from there: its IKE SA
// and, through the Installer's EndpointUpdater, its UDP-encapsulated
// child SAs move to the new endpoint, and B's next exchange reaches A
// there.
func TestPairNATRebinding(t *testing.T) {
	p := cookiePair(t, 10, nil, nil)
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")
	ta.UDPEncap = true
	c := pairConfig(p.clk)
	c.Tunnels = []ike.Tunnel{ta}
	if err := p.a.d.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	p.up(t, "t1")
	if st := p.b.d.Status().IKESAs[0]; !st.RemoteNAT || !st.NATT {
		t.Fatalf("B does not see A behind a NAT: %+v", st)
	}
	moved := netip.MustParseAddrPort("192.0.2.101:40500")
	p.w.NAT(netip.AddrPortFrom(addrA, 4500), moved)
	asa := onlyIKESA(t, p.a)
	asa.lock()
	asa.request(&request{exchange: Informational, build: func(*ikeSA) ([]Payload, error) { return nil, nil },
		onResponse: func(*ikeSA, *Message) {}})
	asa.unlock()
	waitFor(t, "B follows", func() bool {
		st := p.b.d.Status().IKESAs
		return len(st) == 1 && st[0].Remote == moved && p.a.idle()
	})
	p.b.d.mu.Lock()
	atNew, atOld := p.b.d.findIKESA(addrB, moved.Addr()), p.b.d.findIKESA(addrB, addrA)
	p.b.d.mu.Unlock()
	if atNew == nil || atOld != nil {
		t.Fatalf("B's IKE SA by the pair: at the new address %v, at the old %v", atNew, atOld)
	}
	updates := map[bool]iketest.Call{}
	for _, call := range p.b.inst.Calls() {
		if call.Op == "update" {
			updates[call.SA.Inbound] = call
		}
	}
	in, out := updates[true], updates[false]
	if in.SA.Src != moved.Addr() || in.SA.SrcPort != moved.Port() || in.SA.DstPort != 4500 ||
		out.SA.Dst != moved.Addr() || out.SA.DstPort != moved.Port() || out.SA.SrcPort != 4500 {
		t.Fatalf("B's SAs after the rebinding: %v", p.b.inst.Calls())
	}
	// B's own request now reaches A through the new mapping: a child
	// rekey, whose new SAs carry the new endpoint on B.
	before := len(p.a.inst.Calls())
	p.b.d.Expire(p.b.inst.Calls()[1].ID, false)
	p.advance(t, time.Second)
	waitFor(t, "the rekey through the NAT", func() bool { return len(p.a.inst.Calls()) >= before+4 && p.a.idle() && p.b.idle() })
	_, outs, _ := p.b.inst.Tunnel("t1")
	if len(outs) != 1 || outs[0].Dst != moved.Addr() || outs[0].DstPort != moved.Port() {
		t.Fatalf("B's new outbound SA: %+v", outs)
	}
}
