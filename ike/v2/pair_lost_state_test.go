package v2

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
)

// TestPairPeerLostState: B restarts without its deletes reaching A (a
// crash, or deletes lost in a burst, as ismbench soak's responder lost
// some at 10,000 tunnels). A's tunnel, down when its SA expires, comes up
// with the new B on the acquires that traffic makes. The first acquire's
// CREATE_CHILD_SA waits behind the Delete of the expired child, which B
// does not answer: the IKE SA ends (§2.4), and the acquire must fail with
// it; it stayed pending, the tunnel "negotiating" and refusing every
// later acquire, for good.
func TestPairPeerLostState(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha256")
	tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha256")
	ta.Lifetime = ipsec.Lifetime{Time: time.Hour}
	tb.Lifetime = ta.Lifetime
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
	ca.Retransmit = ike.Retransmit{Timeout: 200 * time.Millisecond, Base: 2, Tries: 2} // given up after 1.4 s
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		if local.Addr() == addrB || remote.Addr() == addrB {
			return nil
		}
		return msg
	})
	p.b.d.Close()
	b2 := &side{inst: iketest.NewInstaller(0x3000), lis: iketest.NewListener()}
	d, err := New(cb, b2.inst, p.w, b2.lis)
	if err != nil {
		t.Fatal(err)
	}
	b2.d = d
	p.w.Attach(addrB, d)
	t.Cleanup(func() { d.Close() })
	p.w.SetFilter(nil)
	p.b = b2

	_, _, ids := p.a.inst.Tunnel("t1")
	p.a.d.Expire(ids[0], true)
	waitEvent(t, p.a.lis, "down", "t1")
	for range 120 {
		if countEvents(b2.lis, "up", "t1") > 0 {
			break
		}
		p.a.d.Acquire("t1") // traffic, once a second
		p.advance(t, time.Second)
	}
	if countEvents(b2.lis, "up", "t1") == 0 {
		t.Fatalf("t1 not up with the restarted peer after two minutes of acquires; A: %+v", p.a.d.Status().Tunnels[0])
	}
}
