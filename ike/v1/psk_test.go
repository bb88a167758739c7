package v1

import (
	"testing"

	"github.com/ismgw/ism/ike"
)

// TestPSKOutlivesReconfigure: a negotiation's pre-shared key is its own
// copy. Reconfigure zeroes the old table's keys while negotiations that
// looked one up may still be computing SKEYID with it (a data race, and a
// zeroed key, seen by the race detector in the soak's reloads).
func TestPSKOutlivesReconfigure(t *testing.T) {
	ca, cb := baseConfig(), baseConfig()
	a, _, _ := newPair(t, ca, cb)
	a.d.mu.Lock()
	k := a.d.pskFor(ike.Identity{}, addrB)
	a.d.mu.Unlock()
	if err := a.d.Reconfigure(baseConfig()); err != nil {
		t.Fatal(err)
	}
	if string(k) != "pair-secret" {
		t.Fatalf("the key a negotiation holds changed with the reconfiguration: %q", k)
	}
}
