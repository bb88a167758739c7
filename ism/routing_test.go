package ism

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ismgw/ism/ipsec"
)

// TestPolicyRoute: traffic reaches a secure interface by a source-based
// policy route (the seed: "by routing or policy routing"), with no route to
// its destination; other sources do not use the tunnel.
func TestPolicyRoute(t *testing.T) {
	t.Parallel()
	x := newLab(t, manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel}))
	// Rebuild a with a policy route instead of the destination route.
	confA := x.manualConf("a", x.kb, x.ka, "")
	confA.tunnels[0].routes = nil
	confA.routes = "ip policy-route source 198.51.100.128 255.255.255.128 ipsec:t1\n"
	text := confA.String()
	confB := x.manualConf("b", x.ka, x.kb, "")
	confB.routes = "ip route 198.51.100.128 255.255.255.128 ipsec:t1\n"
	textB := confB.String()
	for _, c := range []struct {
		g    *Gateway
		text string
	}{{x.ga, text}, {x.gb, textB}} {
		reloadText(t, c.g, c.text)
	}
	x.lab.MustRun(x.a, "ip", "addr", "add", "198.51.100.129/32", "dev", "lo")
	if rules := x.lab.MustRun(x.a, "ip", "rule", "show"); !strings.Contains(rules, "from 198.51.100.128/25 lookup") {
		t.Fatalf("no policy rule:\n%s", rules)
	}
	if out, err := x.lab.Run(x.a, "ping", "-c", "2", "-i", "0.2", "-W", "10", "-I", "198.51.100.129", "203.0.113.1"); err != nil {
		t.Fatalf("ping from the policy-routed source: %v\n%s", err, out)
	}
	if n := x.ga.tunnels["t1"].d.TX.Packets.Load(); n != 2 {
		t.Errorf("tunnel sent %d packets, want 2", n)
	}
	// Another source has no route to 203.0.113.1 at all.
	if _, err := x.lab.Run(x.a, "ping", "-c", "1", "-W", "1", "-I", "198.51.100.1", "203.0.113.1"); err == nil {
		t.Error("a source outside the policy route reached the tunnel's far side")
	}
	// Removing the policy route withdraws the rule.
	confA.routes = ""
	reloadText(t, x.ga, confA.String())
	if rules := x.lab.MustRun(x.a, "ip", "rule", "show"); strings.Contains(rules, "198.51.100.128/25") {
		t.Errorf("policy rule left behind:\n%s", rules)
	}
}

// TestMTU: the secure interface's routes carry the tunnel's inner MTU
// (1446 bytes for esp-aes128-gcm16 over a 1500-byte path), so the kernel
// refuses bigger DF packets with "fragmentation needed" (RFC 1191) — for a
// host behind the gateway too — and fragments the rest before ISM sees them.
func TestMTU(t *testing.T) {
	t.Parallel()
	x := newLab(t, manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel}))
	mtu := x.ga.tunnels["t1"].d.MTU.Load()
	if mtu != 1446 {
		t.Fatalf("inner MTU %d, want 1446", mtu)
	}
	if r := x.lab.MustRun(x.a, "ip", "route", "show", "203.0.113.0/24"); !strings.Contains(r, "mtu 1446") {
		t.Fatalf("route without the tunnel MTU: %s", r)
	}
	// 1418 bytes of ICMP payload is a 1446-byte packet: it fits.
	if out, err := x.lab.Run(x.a, "ping", "-c", "1", "-W", "10", "-M", "do", "-s", "1418", "-I", "198.51.100.1", "203.0.113.1"); err != nil {
		t.Fatalf("1446-byte DF ping: %v\n%s", err, out)
	}
	// One byte more is refused locally with the path MTU.
	out, err := x.lab.Run(x.a, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1419", "-I", "198.51.100.1", "203.0.113.1")
	if err == nil || !strings.Contains(out, "1446") {
		t.Fatalf("1447-byte DF ping: want refused with mtu 1446: %v\n%s", err, out)
	}
	// Without DF the kernel fragments and the fragments go through.
	if out, err := x.lab.Run(x.a, "ping", "-c", "1", "-W", "10", "-M", "dont", "-s", "3000", "-I", "198.51.100.1", "203.0.113.1"); err != nil {
		t.Fatalf("3028-byte ping without DF: %v\n%s", err, out)
	}
	// A host behind gateway a gets ICMP "fragmentation needed" from it.
	h := x.lab.NS("h")
	x.lab.Link(h, "eth0", netip.MustParsePrefix("198.51.100.130/26"), x.a, "eth1", netip.MustParsePrefix("198.51.100.129/26"))
	x.lab.MustRun(h, "ip", "route", "add", "default", "via", "198.51.100.129")
	x.lab.MustRun(x.a, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	out, err = x.lab.Run(h, "ping", "-c", "2", "-W", "10", "-M", "do", "-s", "1472", "203.0.113.1")
	if err == nil || !strings.Contains(out, "mtu = 1446") && !strings.Contains(out, "mtu=1446") {
		t.Fatalf("host behind the gateway: want ICMP fragmentation needed with mtu 1446:\n%s", out)
	}
}
