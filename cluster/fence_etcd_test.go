package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/etcdtest"
)

// lastEvent returns the last gateway event of kind for group, or fails.
func lastEvent(t *testing.T, gw *testGateway, kind, group string) gwEvent {
	t.Helper()
	var out gwEvent
	for _, e := range gw.log() {
		if e.Kind == kind && e.Group == group {
			out = e
		}
	}
	if out.Kind == "" {
		t.Fatalf("%s never had a %s of %s", gw.node, kind, group)
	}
	return out
}

// TestFencingPartition: the owner is cut off from etcd (its link to the
// members drops every packet) but keeps running. It must stop before the
// other node starts: the fence fires at its last renewal's send time plus
// TTL minus the margin, and the other node can win only once the lease has
// expired in etcd. The order is asserted with both nodes' timestamps;
// when the link comes back the old owner rejoins and takes nothing back.
func TestFencingPartition(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Namespaces: true})
	nsA, nsB := c.Attach("a"), c.Attach("b")
	key := testClusterKey(t)
	groups := testGroups("g0", "g1")
	a := startNode(t, c, "a", groups, nodeOpts{ns: nsA, key: key})
	eventually(t, 10*time.Second, "a owns the groups", func() bool { return settled(t, groups, a) })
	b := startNode(t, c, "b", groups, nodeOpts{ns: nsB, key: key})
	eventually(t, 10*time.Second, "a and b settle", func() bool { return settled(t, groups, a, b) && len(a.gw.owns()) == 1 })
	var g string
	for g = range a.gw.owns() {
	}
	time.Sleep(time.Second)

	c.Cut(nsA)
	cut := time.Now()
	eventually(t, 15*time.Second, "b takes "+g, func() bool { return b.gw.owns()[g] })
	stop, start := lastEvent(t, a.gw, "stop", g), lastEvent(t, b.gw, "start", g)
	if stop.Reason != StopFenced.String() || !stop.At.Before(start.At) {
		t.Fatalf("a stopped (%s) at %v, b started at %v: not fenced first", stop.Reason, stop.At.Format(time.StampMicro), start.At.Format(time.StampMicro))
	}
	if start.Handover || start.From != "a" {
		t.Fatalf("b's start: %+v, want a failover from a", start)
	}
	t.Logf("partition: a fenced %v after the cut, b started %v after it: %v between a's stop and b's start (fence margin %v)",
		stop.At.Sub(cut), start.At.Sub(cut), start.At.Sub(stop.At), a.cfg.FenceMargin)
	if d := stop.At.Sub(cut); d > a.cfg.TTL-a.cfg.FenceMargin+100*time.Millisecond {
		t.Errorf("a fenced %v after the cut, later than TTL−margin after its last renewal", d)
	}
	if len(a.eventsOf(Fenced)) == 0 || a.Status().Lease.State != "joining" {
		t.Fatalf("a: fenced events %v, lease %+v", a.eventsOf(Fenced), a.Status().Lease)
	}
	if st := a.Status(); st.Etcd.Reachable || st.Etcd.Holding {
		t.Fatalf("a's etcd status %+v: a partition is no evidence that etcd is down", st.Etcd)
	}
	if len(b.gw.owns()) != 2 {
		t.Fatalf("b owns %v", b.gw.owns())
	}

	c.Mend(nsA)
	eventually(t, 15*time.Second, "a rejoins", func() bool { return a.Status().Lease.State == "held" })
	eventually(t, 15*time.Second, "the groups spread again", func() bool { return settled(t, groups, a, b) && len(a.gw.owns()) == 1 })
	var sb strings.Builder
	st := a.Status()
	st.WriteTo(&sb)
	t.Logf("a after the partition:\n%s", sb.String())
}

// TestSessionUpAfterFenceRanOut: a session whose fence ran out before
// Run's goroutine took it up (a slow join under load: the fence fired
// and found no session to end) is given up for a new lease with a live
// fence, not kept as a held lease the node never renews or acts on
// (TestFencingPartition's rejoin, seen under load).
func TestSessionUpAfterFenceRanOut(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	a := startNode(t, c, "a", nil, nodeOpts{key: testClusterKey(t)})
	eventually(t, 10*time.Second, "a joins", func() bool { return a.Status().Lease.State == "held" })
	old := a.Status().Lease.ID
	done := make(chan struct{})
	a.post(func() {
		s := a.sess
		a.sess, a.joining = nil, true // establish has returned s ...
		a.fence.stop()                // ... and its fence ran out meanwhile
		a.sessionUp(s)
		close(done)
	})
	<-done
	eventually(t, 10*time.Second, "a joins again with a new lease and a live fence", func() bool {
		st := a.Status()
		return st.Lease.State == "held" && st.Lease.ID != old && !st.Lease.Deadline.IsZero()
	})
}
