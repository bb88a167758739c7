package v1

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// TestPairHalfOpenCountsOpening: the bound on phase 1 negotiations peers
// may have open counts only those not complete. B, allowed one at a
// time, holds t1's established IKE SA and still answers A's phase 1 for
// t2 (a responder with 20,000 established IKE SAs refused every new one).
func TestPairHalfOpenCountsOpening(t *testing.T) {
	t.Parallel()
	net2 := netip.MustParsePrefix("203.0.113.128/25")
	ca, cb := baseConfig(), baseConfig()
	ca.PreSharedKeys = append(ca.PreSharedKeys, ike.PreSharedKey{Peer: addrC.String(), Key: ipsec.Key("pair-secret")})
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha"),
		pairTunnel(t, "t2", addrA, addrC, netA, net2, "esp-aes128-hmac-sha")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha"),
		pairTunnel(t, "t2", addrC, addrA, net2, netA, "esp-aes128-hmac-sha")}
	w := newSim(t)
	a := newSide(t, w, ca, addrA, 0x1000)
	b := newSide(t, w, cb, addrB, 0x2000)
	w.Attach(addrC, b.d)
	b.d.mu.Lock()
	b.d.maxOpening = 1
	b.d.mu.Unlock()
	for _, name := range []string{"t1", "t2"} {
		a.d.Acquire(name)
		w.waitEvent(t, b.lis, "up", name, 10*time.Second)
	}
	b.d.mu.Lock()
	opening, inits := b.d.opening, len(b.d.inits)
	b.d.mu.Unlock()
	if opening != 0 || inits != 2 {
		t.Errorf("B counts %d phase 1 negotiations open and keeps %d responders, want 0 and 2", opening, inits)
	}
	a.d.Close()
	w.waitUntil(t, 10*time.Second, "B's IKE SAs deleted", func() bool { return len(b.d.Status().IKESAs) == 0 })
	b.d.mu.Lock()
	opening = b.d.opening
	b.d.mu.Unlock()
	if opening != 0 {
		t.Errorf("B counts %d phase 1 negotiations open after the deletes, want 0", opening)
	}
}
