package v2

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
)

// TestPairTunnelStatus checks that one tunnel's status (TunnelStatus)
// is what the whole Status says of it and of the IKE SAs between its
// endpoints: for two tunnels up on one IKE SA, one that never came up
// and a name the daemon does not run.
func TestPairTunnelStatus(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	lowA, lowB, highA, highB := netip.MustParsePrefix("198.51.100.0/25"), netip.MustParsePrefix("203.0.113.0/25"), netip.MustParsePrefix("198.51.100.128/25"), netip.MustParsePrefix("203.0.113.128/25")
	addrC := netip.MustParseAddr("192.0.2.3") // nobody there
	ca.Tunnels = []ike.Tunnel{
		pairTunnel(t, "t1", addrA, addrB, lowA, lowB, "esp-aes128-hmac-sha"),
		pairTunnel(t, "t2", addrA, addrB, highA, highB, "esp-aes128-hmac-sha"),
		pairTunnel(t, "t3", addrA, addrC, highA, highB, "esp-aes128-hmac-sha"),
	}
	cb.Tunnels = []ike.Tunnel{
		pairTunnel(t, "t1", addrB, addrA, lowB, lowA, "esp-aes128-hmac-sha"),
		pairTunnel(t, "t2", addrB, addrA, highB, highA, "esp-aes128-hmac-sha"),
	}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	p.up(t, "t2")
	for _, s := range []*side{p.a, p.b} {
		all := s.d.Status()
		if len(all.IKESAs) != 1 {
			t.Fatalf("%d IKE SAs, want 1", len(all.IKESAs))
		}
		for _, want := range all.Tunnels {
			got, sas, ok := s.d.TunnelStatus(want.Name)
			if !ok {
				t.Fatalf("TunnelStatus(%s): not found", want.Name)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("TunnelStatus(%s) =\n%+v\nStatus has\n%+v", want.Name, got, want)
			}
			var wantSAs []ike.IKESAStatus
			if want.Name != "t3" {
				wantSAs = all.IKESAs
			}
			if !reflect.DeepEqual(sas, wantSAs) && len(sas)+len(wantSAs) > 0 {
				t.Errorf("TunnelStatus(%s) IKE SAs = %+v, want %+v", want.Name, sas, wantSAs)
			}
		}
		if _, _, ok := s.d.TunnelStatus("t9"); ok {
			t.Error("TunnelStatus(t9): found a tunnel never configured")
		}
	}
	if st, _, _ := p.a.d.TunnelStatus("t1"); st.State != "up" || st.IKESA != "established" || len(st.Children) != 1 {
		t.Errorf("t1: %+v", st)
	}
}

// BenchmarkIKEv2TunnelStatusAmong measures one tunnel's status (`show
// ipsec tunnel NAME`) while n tunnels are up, each with its own endpoint
// pair and IKE SA (the scale plan): the cost of TunnelStatus (one) must
// not grow with n; the whole Status (whole), which show took it from
// before, does. Compare the rows of one run.
func BenchmarkIKEv2TunnelStatusAmong(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("tunnels=%d", n), func(b *testing.B) {
			hubCfg, spokeCfg := scaleConfigs(b, n)
			r := newScaleRig(b, n, hubCfg, spokeCfg, func(w *iketest.Wire, hub, spokes *Daemon) {
				w.Attach(scaleHub, hub)
				w.AttachOthers(spokes)
			})
			r.hub.Acquire("t0")
			r.th.wait(b, "up")
			r.ts.wait(b, "up")
			r.upAll(b, n, 200)
			names := []string{"t0", fmt.Sprintf("t%d", n/2), fmt.Sprintf("t%d", n-1)}
			b.Run("one", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					name := names[i%len(names)]
					st, sas, ok := r.hub.TunnelStatus(name)
					if !ok || st.State != "up" || len(sas) != 1 || !slices.ContainsFunc(sas, func(s ike.IKESAStatus) bool { return s.Established }) {
						b.Fatalf("%s: %v %+v %+v", name, ok, st, sas)
					}
					i++
				}
			})
			b.Run("whole", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if st := r.hub.Status(); len(st.Tunnels) != n {
						b.Fatalf("%d tunnels", len(st.Tunnels))
					}
				}
			})
		})
	}
}
