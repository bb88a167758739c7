package vr

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/netlab"
)

// TestVIPMovesNeighbourCache: a peer on a bridge learns the VIP's MAC from
// the node that has it; when another node takes the VIP over, its
// announcement moves the peer's neighbour cache entry to it at once,
// without the peer asking (IPv4: gratuitous ARP; IPv6: unsolicited
// neighbour advertisement).
func TestVIPMovesNeighbourCache(t *testing.T) {
	for _, c := range []struct {
		name             string
		peer, n1, n2, vp string
	}{
		{"IPv4", "192.0.2.2/24", "192.0.2.11/24", "192.0.2.12/24", "192.0.2.100/24"},
		{"IPv6", "2001:db8::2/64", "2001:db8::11/64", "2001:db8::12/64", "2001:db8::100/64"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := netlab.New(t)
			hub, peer, n1, n2 := l.NS("hub"), l.NS("peer"), l.NS("n1"), l.NS("n2")
			l.MustRun(hub, "ip", "link", "add", "br0", "type", "bridge")
			l.MustRun(hub, "ip", "link", "set", "br0", "up")
			for i, x := range []struct{ ns, addr string }{{peer, c.peer}, {n1, c.n1}, {n2, c.n2}} {
				hifc := []string{"vpeer", "vn1", "vn2"}[i]
				l.Link(x.ns, "eth0", netip.MustParsePrefix(x.addr), hub, hifc, netip.Prefix{})
				l.MustRun(hub, "ip", "link", "set", hifc, "master", "br0")
				if strings.Contains(x.addr, ":") {
					l.MustRun(x.ns, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
				}
			}
			vip := netip.MustParsePrefix(c.vp)
			open := func(ns string) *VR {
				v, err := Open(ns, ns)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(v.Close)
				return v
			}
			v1, v2 := open(n1), open(n2)
			a1, err := v1.AddVIP(vip)
			if err != nil {
				t.Fatal(err)
			}
			mac := func(ns string) string {
				out := l.MustRun(ns, "ip", "link", "show", "eth0")
				i := strings.Index(out, "link/ether ")
				return out[i+11 : i+28]
			}
			neigh := func() string {
				return l.MustRun(peer, "ip", "neigh", "show", vip.Addr().String())
			}
			ping := "ping"
			l.MustRun(peer, ping, "-c", "1", "-W", "2", vip.Addr().String())
			if n := neigh(); !strings.Contains(n, mac(n1)) {
				t.Fatalf("peer's entry %q, want node 1's MAC %s", n, mac(n1))
			}
			if err := v1.DelVIP(a1); err != nil {
				t.Fatal(err)
			}
			if _, err := v2.AddVIP(vip); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(2 * time.Second)
			for !strings.Contains(neigh(), mac(n2)) {
				if time.Now().After(deadline) {
					t.Fatalf("peer's entry %q still not node 2's MAC %s", neigh(), mac(n2))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := v1.DelVIP(a1); err != nil {
				t.Errorf("deleting a VIP already gone: %v", err)
			}
			if _, err := v1.AddVIP(netip.MustParsePrefix("198.51.100.7/24")); err == nil {
				t.Error("a VIP on no network of the VR was added")
			}
		})
	}
}
