package v1

import (
	"net/netip"
	"testing"

	"github.com/ismgw/ism/ike"
)

// TestTunnelsBySource: a responder finds a peer's tunnel among the
// tunnels on the address the message arrived on, and the filing follows a
// reload that moves a tunnel to another source, adds one or removes one.
func TestTunnelsBySource(t *testing.T) {
	other := netip.MustParseAddr("192.0.2.77")
	t1 := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")
	t2 := pairTunnel(t, "t2", addrA, addrC, netA, netB, "esp-aes128-gcm16")
	t2.UDPEncap = true
	d := testDaemon(t, t1, t2)
	find := func(local, remote netip.Addr) string {
		d.mu.Lock()
		defer d.mu.Unlock()
		if tu := d.matchTunnel(local, remote, ike.Identity{}); tu != nil {
			return tu.Name
		}
		return ""
	}
	encap := func(local, remote netip.Addr) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.wantsEncap(local, remote)
	}
	if got := find(addrA, addrB); got != "t1" {
		t.Errorf("peer %v on %v: tunnel %q, want t1", addrB, addrA, got)
	}
	if got := find(addrA, addrC); got != "t2" || !encap(addrA, addrC) || encap(addrA, addrB) {
		t.Errorf("peer %v on %v: tunnel %q, encapsulation forced %v (and for t1's peer %v); want t2, true, false", addrC, addrA, got, encap(addrA, addrC), encap(addrA, addrB))
	}
	if got := find(other, addrB); got != "" {
		t.Errorf("peer %v on %v, where no tunnel is: tunnel %q", addrB, other, got)
	}

	// t1 moves to another source, t2 goes, t3 comes.
	t1.Source = other
	t3 := pairTunnel(t, "t3", addrA, addrC, netA, netB, "esp-aes128-gcm16")
	cfg := baseConfig()
	cfg.Tunnels = []ike.Tunnel{t1, t3}
	if err := d.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	if got := find(other, addrB); got != "t1" {
		t.Errorf("after the reload, peer %v on %v: tunnel %q, want t1", addrB, other, got)
	}
	if got := find(addrA, addrB); got != "" {
		t.Errorf("after the reload, peer %v on %v (t1's old source): tunnel %q, want none", addrB, addrA, got)
	}
	if got := find(addrA, addrC); got != "t3" || encap(addrA, addrC) {
		t.Errorf("after the reload, peer %v on %v: tunnel %q, encapsulation forced %v; want t3 (no forced encapsulation)", addrC, addrA, got, encap(addrA, addrC))
	}
}
