package operator

import (
	"net/netip"
	"testing"

	"github.com/ismgw/ism/ike"
)

// TestLinkIKESAs: each signaled tunnel gets the first established IKE SA
// of its version between its source and its peer; one being negotiated,
// one of the other version or with another local address is not it, and a
// tunnel without a peer gets none.
func TestLinkIKESAs(t *testing.T) {
	ap := netip.MustParseAddrPort
	s := Snapshot{
		IKESAs: []ike.IKESAStatus{
			{Local: ap("192.0.2.1:500"), Remote: ap("192.0.2.2:500"), ICookie: "negotiating"},
			{Version: 2, Local: ap("192.0.2.1:500"), Remote: ap("192.0.2.2:500"), ICookie: "v2", Established: true},
			{Local: ap("192.0.2.9:500"), Remote: ap("192.0.2.2:500"), ICookie: "other-local", Established: true},
			{Local: ap("192.0.2.1:4500"), Remote: ap("192.0.2.2:4500"), ICookie: "v1", Established: true},
			{Local: ap("192.0.2.1:500"), Remote: ap("192.0.2.2:500"), ICookie: "v1-later", Established: true},
			{Version: 2, Local: ap("192.0.2.1:500"), Remote: ap("192.0.2.3:500"), ICookie: "t3", Established: true},
		},
		Tunnels: []TunnelStatus{
			{Name: "ipsec:t1", Source: "192.0.2.1", IKE: &ike.TunnelStatus{Peer: ap("192.0.2.2:4500")}},
			{Name: "ipsec:t2", Source: "192.0.2.1", IKE: &ike.TunnelStatus{Version: 2, Peer: ap("192.0.2.2:500")}},
			{Name: "ipsec:t3", Source: "192.0.2.1", IKE: &ike.TunnelStatus{Version: 2, Peer: ap("192.0.2.3:500")}},
			{Name: "ipsec:t4", Source: "192.0.2.1", IKE: &ike.TunnelStatus{}},
			{Name: "ipsec:t5", Source: "192.0.2.1"},
		},
	}
	s.linkIKESAs()
	want := []string{"v1", "v2", "t3", "", ""}
	for i, tu := range s.Tunnels {
		got := ""
		if tu.IKESA != nil {
			got = tu.IKESA.SPIi
		}
		if got != want[i] {
			t.Errorf("%s rides on %q, want %q", tu.Name, got, want[i])
		}
	}
}
