package v2

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// TestPairInitialContactPerAddress: a hub (A, one address) sets up a
// tunnel with each of two addresses of B, one IKE SA each, each IKE_AUTH
// with INITIAL_CONTACT (A has no other IKE SA with that destination). B
// deletes only what it holds between the same two addresses (§2.4: the
// IKE SA is the only one between the two identities, and B's differ by
// address), so the first tunnel stays up when the second comes.
func TestPairInitialContactPerAddress(t *testing.T) {
	clk := clocktest.New(t0)
	net2 := netip.MustParsePrefix("203.0.113.128/25")
	ca, cb := pairConfig(clk), pairConfig(clk)
	ca.PreSharedKeys = append(ca.PreSharedKeys, ike.PreSharedKey{Peer: addrC.String(), Key: ipsec.Key("pair-secret")})
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16"),
		pairTunnel(t, "t2", addrA, addrC, netA, net2, "esp-aes128-gcm16")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16"),
		pairTunnel(t, "t2", addrC, addrA, net2, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.w.Attach(addrC, p.b.d)
	p.up(t, "t1")
	p.up(t, "t2")
	p.advance(t, time.Second)
	st := p.b.d.Status()
	for _, tu := range st.Tunnels {
		if tu.State != "up" {
			t.Errorf("B's %s is %s (%s) after both came up", tu.Name, tu.State, tu.LastError)
		}
	}
	if n := len(st.IKESAs); n != 2 {
		t.Errorf("B holds %d IKE SAs, want one per address", n)
	}
}
