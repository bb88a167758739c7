package ism

import (
	"strings"
	"testing"

	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
)

// TestSwanSharedIKESA: two tunnels to the same peer, each with its own
// selectors, negotiate their SAs on one IKE SA (the seed: one IKE SA per
// pair of endpoints), ISM as initiator and as responder, and both carry
// traffic.
func TestSwanSharedIKESA(t *testing.T) {
	t.Parallel()
	for _, role := range swanRoles {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			side := ismConf{global: pskRule("aes128", "sha", 14, ""), transforms: []string{"esp-aes128-hmac-sha"}, tunnels: []ismTunnel{
				{name: "t1", local: "198.51.100.0/25", remote: "203.0.113.0/25"},
				{name: "t2", local: "198.51.100.128/25", remote: "203.0.113.128/25"},
			}}
			peer := swanPeer{Proposals: "aes128-sha1-modp2048", ESP: "aes128-sha1",
				LocalTS: "203.0.113.0/25", RemoteTS: "198.51.100.0/25",
				Children: []charon.Child{{Name: "net2", LocalTS: []string{"203.0.113.128/25"}, RemoteTS: []string{"198.51.100.128/25"},
					ESPProposals: []string{"aes128-sha1"}}}}
			x := newLab(t, swanSpec(side, peer, swantest.Conf{}))
			if out, err := runIn(x.env.NSISM, "ip", "addr", "add", "198.51.100.129/32", "dev", "lo"); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			x.bringUpChild(t, role, "net", ismHost, swanHost)
			x.bringUpChild(t, role, "net2", "198.51.100.129", "203.0.113.129")
			x.traffic(t, ismHost, swanHost)
			x.traffic(t, "198.51.100.129", "203.0.113.129")
			if rows := x.ikeSARows(t); len(rows) != 1 {
				t.Errorf("show ike sa: %d IKE SAs, want 1:\n%s", len(rows), strings.Join(rows, "\n"))
			}
			detail := x.wantShow(t, "show ipsec tunnel detail", "ipsec:t1 is up", "ipsec:t2 is up")
			if n := strings.Count(detail, "IKE SA (phase 1) with 192.0.2.2:4500: established"); n != 2 {
				t.Errorf("show ipsec tunnel detail: %d tunnels up with charon, want 2:\n%s", n, detail)
			}
			for _, name := range []string{"t1", "t2"} {
				st := x.g.tunnels[name]
				if v := st.d.RX.Snapshot(); v.Packets == 0 || v.Dropped() != 0 {
					t.Errorf("%s inbound: %d packets, drops %v", name, v.Packets, v.DropMap())
				}
			}
			sas, err := x.env.ListSAs()
			if err != nil {
				t.Fatal(err)
			}
			installed := 0
			for _, sa := range sas {
				for _, c := range sa.Children {
					if c.F["state"] == "INSTALLED" {
						installed++
					}
				}
			}
			if len(sas) != 1 || installed != 2 {
				t.Errorf("charon: %d IKE SAs with %d installed children, want 1 with 2: %+v", len(sas), installed, sas)
			}
		})
	}
}
