package cluster

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/internal/etcdtest"
)

// testNode is a Node run by a test, with its gateway and events.
type testNode struct {
	*Node
	gw     *testGateway
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []Event
}

type nodeOpts struct {
	ns     string        // namespace to dial etcd from
	period time.Duration // checkpoint period; 0: 250 ms
	key    *checkpoint.Sealer
	secret []byte
	notify func(gwEvent)
}

// testClusterKey is the cluster key of the tests' nodes.
func testClusterKey(t testing.TB) *checkpoint.Sealer {
	_, s := testClusterKeyRaw(t)
	return s
}

// testClusterKeyRaw returns a random cluster key and its sealer.
func testClusterKeyRaw(t testing.TB) ([]byte, *checkpoint.Sealer) {
	k := make([]byte, checkpoint.KeySize)
	rand.Read(k)
	s, err := checkpoint.NewSealer(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, s
}

func startNode(t *testing.T, c *etcdtest.Cluster, name string, groups []Group, o nodeOpts) *testNode {
	t.Helper()
	if o.period == 0 {
		o.period = 250 * time.Millisecond
	}
	if o.secret == nil {
		o.secret = []byte("secret of " + name)
	}
	tn := &testNode{done: make(chan error, 1)}
	tn.gw = newTestGateway(name, o.secret, o.notify)
	cfg := Config{Node: name, Endpoints: c.Endpoints(), TLS: c.PKI.ClientTLS(t, name), Groups: groups,
		CheckpointPeriod: o.period, Key: o.key, Gateway: tn.gw, EtcdElectionTimeout: time.Second, // etcd's default
		Events: func(e Event) {
			tn.mu.Lock()
			tn.events = append(tn.events, e)
			tn.mu.Unlock()
		}}
	if os.Getenv("ISM_CLUSTER_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.ns != "" {
		cfg.Dialer = etcdtest.Dialer(o.ns)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn.Node = n
	ctx, cancel := context.WithCancel(context.Background())
	tn.cancel = cancel
	go func() { tn.done <- n.Run(ctx) }()
	t.Cleanup(tn.stop)
	t.Cleanup(func() { // runs first: the node is still up
		if t.Failed() {
			var sb strings.Builder
			st := n.Status()
			st.WriteTo(&sb)
			tn.mu.Lock()
			t.Logf("node %s at the failure:\n%s\nevents: %+v", name, sb.String(), tn.events)
			tn.mu.Unlock()
		}
	})
	return tn
}

// stop leaves the cluster and waits for Run to return.
func (tn *testNode) stop() {
	tn.cancel()
	select {
	case <-tn.done:
	case <-time.After(10 * time.Second):
	}
}

func (tn *testNode) eventsOf(k EventKind) []Event {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	var out []Event
	for _, e := range tn.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// eventually waits for cond, checking every 20 ms.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// owners returns which test node runs each group, failing on a group run
// by two.
func owners(t *testing.T, nodes ...*testNode) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tn := range nodes {
		for g := range tn.gw.owns() {
			if o, ok := out[g]; ok {
				t.Fatalf("group %s runs on %s and %s", g, o, tn.cfg.Node)
			}
			out[g] = tn.cfg.Node
		}
	}
	return out
}

// settled reports whether every group runs on exactly one node and every
// node's view agrees with its gateway.
func settled(t *testing.T, groups []Group, nodes ...*testNode) bool {
	o := owners(t, nodes...)
	if len(o) != len(groups) {
		return false
	}
	for _, tn := range nodes {
		st := tn.Status()
		for _, g := range st.Groups {
			if g.Owner != o[g.Name] || g.Designated != g.Owner {
				return false
			}
		}
	}
	return true
}

// load returns the tunnels each node runs.
func load(nodes ...*testNode) map[string]int {
	out := map[string]int{}
	for _, tn := range nodes {
		for g := range tn.gw.owns() {
			out[tn.cfg.Node] += len(testGroupTunnels[g])
		}
	}
	return out
}
