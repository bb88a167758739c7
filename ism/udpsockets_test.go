package ism

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/operator"
)

// TestUDPSockets: two ISMs, each with two tunnel sources in one VR
// (192.0.2.1 and 192.0.2.11 in a, 192.0.2.2 and 192.0.2.12 in b), a
// signaled tunnel with ESP in UDP between each pair. With `dataplane
// udp-sockets wildcard` (the default) each VR has one socket on port 500
// and one on 4500, bound to the unspecified address (ss), and still each
// IKE SA runs between its own pair of addresses and each tunnel carries
// its hosts' pings; with per-address, each source has a socket of its
// own on each port. A reload to the other setting rebuilds the tunnels on
// the other kind of sockets, and they carry pings again.
func TestUDPSockets(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"wildcard", "per-address"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			side := func(ns string, srcs, dsts [2]string, local, remote string) string {
				c := ismConf{vrs: [][2]string{{"v", ns}},
					global: pskRule("aes128", "sha", 14, "", netip.MustParseAddr(dsts[0]), netip.MustParseAddr(dsts[1])) +
						"dataplane udp-sockets " + mode + "\n",
					transforms: []string{"esp-aes128-gcm16"}}
				for i := range 2 {
					c.tunnels = append(c.tunnels, ismTunnel{name: fmt.Sprintf("t%d", i+1), source: srcs[i], dest: dsts[i], udp: true,
						local: fmt.Sprintf("%s%d/32", local, i+1), remote: fmt.Sprintf("%s%d/32", remote, i+1)})
				}
				return c.String()
			}
			as, bs := [2]string{"192.0.2.1", "192.0.2.11"}, [2]string{"192.0.2.2", "192.0.2.12"}
			x := newLab(t, labSpec{hosts: true, hostAddrs: []string{"198.51.100.2", "203.0.113.2"},
				prepare: func(x *lab) {
					x.lab.MustRun(x.a, "ip", "addr", "add", as[1]+"/24", "dev", vethOf(t, x.a))
					x.lab.MustRun(x.b, "ip", "addr", "add", bs[1]+"/24", "dev", vethOf(t, x.b))
				},
				a: func(x *lab) string { return side(x.a, as, bs, "198.51.100.", "203.0.113.") },
				b: func(x *lab) string { return side(x.b, bs, as, "203.0.113.", "198.51.100.") }})
			for i := range 2 {
				x.pingUntil(t, x.a, fmt.Sprintf("198.51.100.%d", i+1), fmt.Sprintf("203.0.113.%d", i+1), 3)
			}
			_, data, err := x.ga.Exec("show ike sa")
			if err != nil {
				t.Fatal(err)
			}
			var pairs []string
			for _, sa := range data.([]operator.IKESA) {
				pairs = append(pairs, addrOf(sa.Local)+"-"+addrOf(sa.Remote))
			}
			slices.Sort(pairs)
			if want := []string{as[0] + "-" + bs[0], as[1] + "-" + bs[1]}; !slices.Equal(pairs, want) {
				t.Errorf("A's IKE SAs run between %v, want %v", pairs, want)
			}
			sockets := func(ns, mode string) {
				t.Helper()
				for _, port := range []string{"500", "4500"} {
					out := x.lab.MustRun(ns, "ss", "-Huanp", "sport", "= :"+port)
					var locals []string
					for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
						if f := strings.Fields(line); len(f) >= 4 {
							locals = append(locals, f[3])
						}
					}
					slices.Sort(locals)
					want := []string{"0.0.0.0:" + port}
					if mode == "per-address" {
						srcs := as
						if ns == x.b {
							srcs = bs
						}
						want = []string{srcs[0] + ":" + port, srcs[1] + ":" + port}
						slices.Sort(want)
					}
					if !slices.Equal(locals, want) {
						t.Errorf("%s (%s): UDP sockets on port %s bound to %v, want %v:\n%s", ns, mode, port, locals, want, out)
					}
				}
			}
			sockets(x.a, mode)
			sockets(x.b, mode)
			// A reload to the other mode rebuilds A's tunnels on sockets
			// of the other kind.
			other := map[string]string{"wildcard": "per-address", "per-address": "wildcard"}[mode]
			cfg, err := config.Parse("test.conf", strings.NewReader(strings.Replace(x.textA, "udp-sockets "+mode, "udp-sockets "+other, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if err := x.ga.Reload(cfg); err != nil {
				t.Fatal(err)
			}
			sockets(x.a, other)
			for i := range 2 {
				x.pingUntil(t, x.a, fmt.Sprintf("198.51.100.%d", i+1), fmt.Sprintf("203.0.113.%d", i+1), 3)
			}
		})
	}
}

// addrOf returns the address of "address[port]" or "address:port" text.
func addrOf(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().String()
	}
	if i := strings.IndexAny(s, "[ "); i > 0 {
		return s[:i]
	}
	return s
}

// TestManualUDPOverIPv6: a manual tunnel with ESP in UDP between IPv6
// tunnel ends, both gateways on their wildcard sockets ([::]:4500): pings
// and a transfer go through and every packet sent is received.
func TestManualUDPOverIPv6(t *testing.T) {
	t.Parallel()
	x := newLab(t, manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel, v6: true, udp: true}))
	if err := x.ping(t, 5); err != nil {
		t.Fatal(err)
	}
	x.transfer(t, 1<<20)
	aout, ain := sas(x.ga, "t1")
	bout, bin := sas(x.gb, "t1")
	// The transfer's last segments and ACKs may still be on their way:
	// judge one reading in which every packet sent has arrived (a
	// reading of each counter again could catch one more in flight).
	var ao, bi, bo, ai uint64
	same := waitFor(5*time.Second, func() bool {
		ao, bi, bo, ai = aout.Packets(), bin.Packets(), bout.Packets(), ain.Packets()
		return ao == bi && bo == ai
	})
	if !same || ai < 5 {
		t.Errorf("a sent %d, b received %d; b sent %d, a received %d", ao, bi, bo, ai)
	}
	for _, ns := range []string{x.a, x.b} {
		if out := x.lab.MustRun(ns, "ss", "-Huan", "sport", "= :4500"); !strings.Contains(out, "[::]:4500") {
			t.Errorf("%s: no wildcard IPv6 socket on port 4500:\n%s", ns, out)
		}
	}
}
