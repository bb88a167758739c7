package operator

import (
	"fmt"
	"strings"
	"testing"
)

// tableGateway is a gateway of fixed tunnels that counts how often it was
// asked for its whole state.
type tableGateway struct {
	tunnels []TunnelStatus
	whole   int
}

func (g *tableGateway) Snapshot() Snapshot { g.whole++; return Snapshot{Tunnels: g.tunnels} }

func (g *tableGateway) ClearStatistics([]string) (int, error) { return 0, nil }

func (g *tableGateway) SnapshotTunnels(names []string) (Snapshot, error) {
	var s Snapshot
	for _, n := range names {
		i := strings.TrimPrefix(strings.TrimPrefix(n, "ipsec:"), "t")
		var k int
		if _, err := fmt.Sscan(i, &k); err != nil || k >= len(g.tunnels) {
			return Snapshot{}, fmt.Errorf("no tunnel %s", n)
		}
		s.Tunnels = append(s.Tunnels, g.tunnels[k])
	}
	return s, nil
}

// TestShowOneTunnel: show for named tunnels asks the gateway for those
// (TunnelSnapshotter), never for every tunnel's state; without names it
// takes the whole snapshot.
func TestShowOneTunnel(t *testing.T) {
	g := &tableGateway{}
	for i := range 3 {
		g.tunnels = append(g.tunnels, TunnelStatus{Name: fmt.Sprintf("ipsec:t%d", i), State: "up"})
	}
	for _, cmd := range []string{"show ipsec tunnel t2", "show ipsec tunnel detail ipsec:t2"} {
		out, data, err := Exec(g, cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if ts := data.([]TunnelStatus); len(ts) != 1 || ts[0].Name != "ipsec:t2" || !strings.Contains(out, "ipsec:t2") || strings.Contains(out, "ipsec:t1") {
			t.Errorf("%s: %v\n%s", cmd, ts, out)
		}
	}
	if _, _, err := Exec(g, "show ipsec tunnel detail t9"); err == nil || !strings.Contains(err.Error(), "no tunnel t9") {
		t.Errorf("unknown tunnel: %v", err)
	}
	if g.whole != 0 {
		t.Errorf("show of named tunnels built the whole snapshot %d times", g.whole)
	}
	if _, data, err := Exec(g, "show ipsec tunnel"); err != nil || len(data.([]TunnelStatus)) != 3 || g.whole != 1 {
		t.Errorf("show of every tunnel: %v, %d snapshots", err, g.whole)
	}
}
