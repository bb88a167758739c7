package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/etcdtest"
)

// TestDrain: draining a node moves each of its groups by a handover: the
// old owner's final checkpoint, its Stop, then the new owner's Start from
// that checkpoint, with no gap but the handover itself (no lease has to
// expire). Undrained, it takes its share back. Draining the last node
// fails: nobody could take its groups.
func TestDrain(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	key := testClusterKey(t)
	groups := testGroups("g0", "g1", "g2", "g3", "g4", "g5")
	a := startNode(t, c, "a", groups, nodeOpts{key: key})
	b := startNode(t, c, "b", groups, nodeOpts{key: key})
	eventually(t, 15*time.Second, "a and b settle", func() bool { return settled(t, groups, a, b) })
	moving := a.gw.owns()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	asked := time.Now()
	if err := a.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(asked)
	if len(a.gw.owns()) != 0 {
		t.Fatalf("after the drain a owns %v", a.gw.owns())
	}
	eventually(t, 5*time.Second, "b runs every group", func() bool { return len(b.gw.owns()) == len(groups) })
	var longest time.Duration
	for g := range moving {
		stop, start := lastEvent(t, a.gw, "stop", g), lastEvent(t, b.gw, "start", g)
		gap := start.At.Sub(stop.At)
		if stop.Reason != StopHandover.String() || gap <= 0 || !start.Handover || start.From != "a" {
			t.Fatalf("%s: a stopped (%s) at %v, b started at %v (%+v)", g, stop.Reason, stop.At, start.At, start)
		}
		if gap > a.cfg.TTL/2 {
			t.Errorf("%s: %v between a's stop and b's start: longer than a handover", g, gap)
		}
		longest = max(longest, gap)
	}
	t.Logf("drain of %d groups took %v; longest gap between stop and start %v", len(moving), took, longest)
	if st := a.Status(); st.Nodes[0].Name != "a" || !st.Nodes[0].Draining {
		t.Fatalf("status after the drain: %+v", st.Nodes)
	}

	if err := a.Undrain(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "a takes its share back", func() bool {
		return settled(t, groups, a, b) && len(a.gw.owns()) == 3
	})
	if err := a.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := b.Drain(short); !errors.Is(err, ErrNoSurvivor) {
		t.Fatalf("draining the last node: %v", err)
	}
}
