package cluster

import (
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/etcdtest"
)

// TestTakeoverOnKill: the owner of a group runs in a process of its own
// and is killed with SIGKILL; its lease expires and the survivor starts
// the group from the dead owner's last checkpoint, its SAs resuming past
// every sequence number the dead owner could have sent. Five runs, with
// the default TTL of 2 s; the times from kill to the survivor's Start are
// logged.
func TestTakeoverOnKill(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	raw, key := testClusterKeyRaw(t)
	keyHex := hex.EncodeToString(raw)
	born := time.Now()
	groups := testGroups("g0", "g1")
	starts := make(chan gwEvent, 64)
	b := startNode(t, c, "b", groups, nodeOpts{key: key, secret: []byte("secret of a"),
		period: time.Second, notify: func(e gwEvent) {
			if e.Kind == "start" {
				starts <- e
			}
		}})
	var took []time.Duration
	for run := range 5 {
		a := startNodeProc(t, c, "a", keyHex, born, "g0", "g1")
		// a takes its share: one group by handover from b (or both,
		// the first time, if it came first).
		ev := waitEvent(t, a.events, 15*time.Second, "a starts a group", func(e gwEvent) bool { return e.Kind == "start" })
		g := ev.Group
		time.Sleep(1500 * time.Millisecond) // checkpoints land
		drain(starts)
		a.kill()
		killed := time.Now()
		var got gwEvent
		for got.Group != g {
			select {
			case got = <-starts:
			case <-time.After(10 * time.Second):
				t.Fatalf("run %d: b did not take %s", run, g)
			}
		}
		d := got.At.Sub(killed)
		took = append(took, d)
		if got.Handover || got.From != "a" || got.Records != len(testGroupTunnels[g]) {
			t.Fatalf("run %d: %+v, want a failover from a with every record", run, got)
		}
		// The dead owner's SAs had reached a.gw.seq(killed) at most.
		for tunnel, after := range got.Resume {
			if sent := a.gw.seq(tunnel, killed); after <= sent {
				t.Fatalf("run %d: %s resumes after %d, but a could have sent up to %d", run, tunnel, after, sent)
			}
		}
		if d < 3*DefaultTTL/4-100*time.Millisecond || d > DefaultTTL+2*time.Second {
			t.Fatalf("run %d: takeover in %v with a TTL of %v", run, d, DefaultTTL)
		}
		eventually(t, 10*time.Second, "b owns both", func() bool { return len(b.gw.owns()) == 2 })
	}
	slices.Sort(took)
	t.Logf("takeover from SIGKILL to the survivor's Start, TTL %v, %d runs: min %v, median %v, max %v (all %v)",
		DefaultTTL, len(took), took[0], took[len(took)/2], took[len(took)-1], took)
}

func drain(ch chan gwEvent) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}
