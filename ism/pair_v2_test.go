package ism

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// TestPairV2Hybrid: two gateways with an IKEv2 tunnel whose policy rule
// adds an ML-KEM-768 key exchange to Curve25519 (`additional-key-exchange
// mlkem768`, RFC 9370 in IKE_INTERMEDIATE), each gateway starting the
// tunnel in turn (the role: a first packet from its side): both IKE SAs
// show the hybrid, traffic goes through, and a child SA rekey with PFS
// from the starting end repeats both key exchanges (IKE_FOLLOWUP_KE).
func TestPairV2Hybrid(t *testing.T) {
	t.Parallel()
	for _, starter := range []string{"a", "b"} {
		t.Run("from-"+starter, func(t *testing.T) {
			t.Parallel()
			side := func(ns, src, dst, local, remote string) string {
				global := "ipsec ike-version 2\nipsec isakmp-policy-rule 1\n  encryption aes256-gcm\n  prf sha384\n  group 31\n" +
					"  additional-key-exchange mlkem768\n" + fmt.Sprintf("ipsec pre-shared-key address %s ascii %s\n", dst, swanPSK)
				return ismConf{vrs: [][2]string{{"v", ns}}, global: global, transforms: []string{"esp-aes256-gcm16"},
					tunnels: []ismTunnel{{source: src, dest: dst, local: local, remote: remote, extra: "  tunnel pfs group 31\n"}}}.String()
			}
			x := newLab(t, labSpec{hosts: true,
				a: func(x *lab) string { return side(x.a, "192.0.2.1", "192.0.2.2", "198.51.100.0/24", "203.0.113.0/24") },
				b: func(x *lab) string { return side(x.b, "192.0.2.2", "192.0.2.1", "203.0.113.0/24", "198.51.100.0/24") }})
			from, src, dst, g := x.a, "198.51.100.1", "203.0.113.1", x.ga
			if starter == "b" {
				from, src, dst, g = x.b, "203.0.113.1", "198.51.100.1", x.gb
			}
			if out, err := x.lab.Run(from, "ping", "-c", "3", "-i", "0.2", "-W", "10", "-I", src, dst); err != nil {
				t.Fatalf("ping through the tunnel: %v\n%s", err, out)
			}
			for name, gw := range map[string]*Gateway{"a": x.ga, "b": x.gb} {
				sa := ikeSAOf(t, gw)
				if len(sa.AdditionalKE) != 1 || !strings.Contains(sa.AdditionalKE[0], "mlkem768") || (sa.Role == "initiator") != (name == starter) {
					t.Errorf("%s's IKE SA: role %s, additional key exchanges %v; want the ML-KEM-768 hybrid", name, sa.Role, sa.AdditionalKE)
				}
				out, _, _ := gw.Exec("show ike sa")
				if !strings.Contains(out, "curve25519+mlkem768") {
					t.Errorf("%s: show ike sa lacks curve25519+mlkem768:\n%s", name, out)
				}
			}
			before := g.Statistics().IKEVersions["ikev2"]
			tu := g.tunnels["t1"]
			tu.mu.Lock()
			var out ipsec.SAID
			for id, dir := range tu.sas.all() {
				if dir == ipsec.Outbound {
					out = id
				}
			}
			tu.mu.Unlock()
			g.daemon().Expire(out, false)
			deadline := time.Now().Add(20 * time.Second)
			for g.Statistics().IKEVersions["ikev2"].Rekeys == before.Rekeys {
				if time.Now().After(deadline) {
					t.Fatalf("the child SA was not rekeyed:\n%s", ikeDetail(g))
				}
				time.Sleep(50 * time.Millisecond)
			}
			if d := ikeDetail(g); !strings.Contains(d, "PFS group 31") {
				t.Errorf("the rekeyed child SA has no PFS:\n%s", d)
			}
			if out, err := x.lab.Run(from, "ping", "-c", "3", "-i", "0.2", "-W", "10", "-I", src, dst); err != nil {
				t.Fatalf("ping after the rekey: %v\n%s", err, out)
			}
			for name, gw := range map[string]*Gateway{"a": x.ga, "b": x.gb} {
				if n := gw.Statistics().IKEVersions["ikev2"].FollowupKEExchanges; n != 1 {
					t.Errorf("%s: %d IKE_FOLLOWUP_KE exchanges, want 1 (the child SA rekey's ML-KEM)", name, n)
				}
			}
		})
	}
}

// ikeDetail is `show ipsec tunnel detail t1`.
func ikeDetail(g *Gateway) string {
	out, _, _ := g.Exec("show ipsec tunnel detail t1")
	return out
}
