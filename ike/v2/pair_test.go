package v2

import (
	"testing"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
)

// TestPairPSKByAddress brings a tunnel up between two daemons, each way.
func TestPairPSKByAddress(t *testing.T) {
	for _, aInitiates := range []bool{true, false} {
		clk := clocktest.New(t0)
		ca, cb := pairConfig(clk), pairConfig(clk)
		ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")}
		cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-3des-hmac-sha", "esp-aes128-hmac-sha")}
		p := newPair(t, clk, ca, cb)
		init, resp := p.a, p.b
		if !aInitiates {
			init, resp = p.b, p.a
		}
		init.d.Acquire("t1")
		waitEvent(t, init.lis, "up", "t1")
		waitEvent(t, resp.lis, "up", "t1")
		checkKeysMatch(t, p.a, p.b, "t1", "t1")
		st := init.d.Status()
		if len(st.IKESAs) != 1 || !st.IKESAs[0].Established || st.IKESAs[0].Version != 2 {
			t.Fatalf("IKE SAs: %+v", st.IKESAs)
		}
		if st.Tunnels[0].State != "up" || st.Tunnels[0].Transform.Name() != "esp-aes128-hmac-sha" {
			t.Fatalf("tunnel status: %+v", st.Tunnels[0])
		}
	}
}
