package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/etcdtest"
)

// etcdLeader returns the member that leads the cluster.
func etcdLeader(t *testing.T, c *etcdtest.Cluster) *etcdtest.Member {
	t.Helper()
	cli := c.Client("status")
	for _, m := range c.Members {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cli.Status(ctx, m.ClientURL)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return m
		}
	}
	t.Fatal("no etcd leader")
	return nil
}

// noMoves fails if a node started or stopped a group after since.
func noMoves(t *testing.T, since time.Time, nodes ...*testNode) {
	t.Helper()
	for _, tn := range nodes {
		for _, e := range tn.gw.log() {
			if e.At.After(since) {
				t.Errorf("%s: %s %s at %v (%s)", tn.cfg.Node, e.Kind, e.Group, e.At.Format(time.StampMilli), e.Reason)
			}
		}
	}
}

// TestEtcdMemberLoss: killing etcd's leader (kill -9) moves nothing;
// killing all three moves nothing either: the owners keep their groups
// and their status says etcd is unreachable; when the members come back
// on their data, the same leases carry on, still with nothing moved.
func TestEtcdMemberLoss(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	key := testClusterKey(t)
	groups := testGroups("g0", "g1", "g2", "g3")
	a := startNode(t, c, "a", groups, nodeOpts{key: key})
	b := startNode(t, c, "b", groups, nodeOpts{key: key})
	eventually(t, 15*time.Second, "a and b settle", func() bool { return settled(t, groups, a, b) })
	before := owners(t, a, b)
	leaseA, leaseB := a.Status().Lease.ID, b.Status().Lease.ID

	since := time.Now()
	etcdLeader(t, c).Kill()
	time.Sleep(3 * DefaultTTL)
	noMoves(t, since, a, b)
	if st := a.Status(); !st.Etcd.Reachable || st.Lease.State != "held" {
		t.Fatalf("with two members of three: %+v %+v", st.Etcd, st.Lease)
	}

	for _, m := range c.Members {
		m.Kill()
	}
	time.Sleep(3 * DefaultTTL)
	noMoves(t, since, a, b)
	for _, tn := range []*testNode{a, b} {
		st := tn.Status()
		if st.Etcd.Reachable || !st.Etcd.Holding || st.Lease.State != "held" {
			t.Fatalf("%s with etcd down: %+v %+v", tn.cfg.Node, st.Etcd, st.Lease)
		}
		var sb strings.Builder
		st.WriteTo(&sb)
		if !strings.Contains(sb.String(), "etcd UNREACHABLE") || !strings.Contains(sb.String(), "refused") {
			t.Fatalf("show cluster with etcd down:\n%s", sb.String())
		}
		if len(tn.eventsOf(EtcdUnreachable)) == 0 {
			t.Errorf("%s: no etcd-unreachable event", tn.cfg.Node)
		}
		if tn.cfg.Node == "a" {
			t.Logf("show cluster on a with every etcd member killed:\n%s", sb.String())
		}
	}
	if got := owners(t, a, b); len(got) != len(before) {
		t.Fatalf("owners %v, before %v", got, before)
	}

	for _, m := range c.Members {
		m.Start()
	}
	eventually(t, 20*time.Second, "etcd reachable again", func() bool {
		return a.Status().Etcd.Reachable && b.Status().Etcd.Reachable
	})
	time.Sleep(2 * DefaultTTL)
	noMoves(t, since, a, b)
	if a.Status().Lease.ID != leaseA || b.Status().Lease.ID != leaseB {
		t.Fatal("a lease was replaced: the nodes were fenced")
	}
	for g, o := range owners(t, a, b) {
		if before[g] != o {
			t.Errorf("%s moved from %s to %s", g, before[g], o)
		}
	}
}
