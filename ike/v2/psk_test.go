package v2

import (
	"testing"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
)

// TestPSKOutlivesReconfigure: an exchange's pre-shared key is its own
// copy. Reconfigure zeroes the old table's keys while IKE_AUTH exchanges
// that looked one up may still be computing their AUTH with it (a data
// race, and a zeroed key, seen by the race detector in the soak's
// reloads).
func TestPSKOutlivesReconfigure(t *testing.T) {
	clk := clocktest.New(t0)
	p := newPair(t, clk, pairConfig(clk), pairConfig(clk))
	d := p.a.d
	d.mu.Lock()
	k := d.pskFor(ike.Identity{}, addrB)
	d.mu.Unlock()
	if err := d.Reconfigure(pairConfig(clk)); err != nil {
		t.Fatal(err)
	}
	if string(k) != "pair-secret" {
		t.Fatalf("the key an exchange holds changed with the reconfiguration: %q", k)
	}
}
