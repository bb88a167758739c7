package cluster

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/internal/etcdtest"
)

// TestGuardedWrites: the owner's checkpoint transaction lands while its
// election key stands; once the key is gone (as when its lease expires),
// the same transaction is refused and changes nothing, and the owner
// stops the group as deposed. A node with another cluster key stays out.
func TestGuardedWrites(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	groups := testGroups("g0")
	a := startNode(t, c, "a", groups, nodeOpts{key: testClusterKey(t)})
	eventually(t, 10*time.Second, "a owns g0", func() bool { return settled(t, groups, a) })
	a.mu.Lock()
	g := a.groups["g0"]
	key, rev := g.key, g.rev
	a.mu.Unlock()
	ctx := context.Background()
	st := &checkpoint.State{Written: time.Now(), Period: time.Second, Tunnels: []checkpoint.Tunnel{a.gw.tunnel("g0-t0", time.Now())}}
	defer st.Zero()
	if err := a.writeGroup(ctx, g, &writeState{}, key, rev, st); err != nil {
		t.Fatalf("the owner's write: %v", err)
	}
	cli := c.Client("test")
	stateKey := a.stateKey("g0", "g0-t0")
	before, err := cli.Get(ctx, stateKey)
	if err != nil || len(before.Kvs) != 1 {
		t.Fatalf("record: %v", err)
	}
	if _, err := cli.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := a.writeGroup(ctx, g, &writeState{}, key, rev, st); !errors.Is(err, errDeposed) {
		t.Fatalf("a deposed owner's write: %v", err)
	}
	after, _ := cli.Get(ctx, stateKey)
	if len(after.Kvs) != 1 || after.Kvs[0].ModRevision != before.Kvs[0].ModRevision {
		t.Fatal("the refused transaction changed the record")
	}
	eventually(t, 5*time.Second, "a stops g0 as deposed", func() bool {
		for _, e := range a.gw.log() {
			if e.Kind == "stop" && e.Reason == StopDeposed.String() {
				return true
			}
		}
		return false
	})
	if a.Status().Groups[0].Refused == 0 {
		t.Error("the refused write is not counted")
	}

	// A node with another cluster key could not read the records: it
	// refuses to join.
	x := startNode(t, c, "x", groups, nodeOpts{key: testClusterKey(t)})
	eventually(t, 5*time.Second, "x refuses to join", func() bool {
		return strings.Contains(x.Status().Lease.Error, "sealed with another key")
	})
	if x.Status().Lease.State != "joining" || len(x.gw.owns()) != 0 {
		t.Fatalf("x: %+v", x.Status().Lease)
	}
}

// TestKeyspaceHoldsNoKeys: after checkpoints, a handover and a failover,
// no SA key, IKE record or the cluster key is anywhere in etcd, raw or in
// hex, in the current keyspace or in its history; yet the records, opened
// with the cluster key, hold them.
func TestKeyspaceHoldsNoKeys(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	raw, key := testClusterKeyRaw(t)
	groups := testGroups("g0", "g1", "g2")
	a := startNode(t, c, "a", groups, nodeOpts{key: key})
	b := startNode(t, c, "b", groups, nodeOpts{key: key})
	eventually(t, 15*time.Second, "settle", func() bool { return settled(t, groups, a, b) })
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)

	secrets := [][]byte{raw}
	for _, gw := range []*testGateway{a.gw, b.gw} {
		for _, g := range groups {
			for _, name := range g.Tunnels {
				tu := gw.tunnel(name, time.Now())
				for _, sa := range tu.SAs {
					secrets = append(secrets, sa.CipherKey)
				}
				secrets = append(secrets, tu.IKE[0].Data)
			}
		}
	}
	cli := c.Client("dump")
	all, err := cli.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	var values [][]byte
	opened := 0
	for _, kv := range all.Kvs {
		values = append(values, kv.Key, kv.Value)
		if strings.Contains(string(kv.Key), "/state/") {
			body, err := key.Open(checkpoint.KindTunnel, kv.Value, kv.Key)
			if err != nil {
				t.Fatalf("%s does not open: %v", kv.Key, err)
			}
			if secretIn(body, secrets) < 0 {
				t.Fatalf("%s opened holds none of the keys: the search would prove nothing", kv.Key)
			}
			opened++
		}
	}
	// The history, from the first revision on.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	hist := 0
	for r := range cli.Watch(wctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(1)) {
		for _, ev := range r.Events {
			values = append(values, ev.Kv.Key, ev.Kv.Value)
			hist++
		}
		if len(r.Events) == 0 || r.Events[len(r.Events)-1].Kv.ModRevision >= r.Header.Revision {
			break
		}
	}
	if opened == 0 || hist < len(all.Kvs) {
		t.Fatalf("opened %d records, %d history events", opened, hist)
	}
	for _, v := range values {
		if i := secretIn(v, secrets); i >= 0 {
			t.Fatalf("secret %d found in etcd", i)
		}
	}
	t.Logf("searched %d keys and %d history events for %d secrets, raw and hex: none found", len(all.Kvs), hist, len(secrets))
}

// secretIn returns the index of the first secret found in b, raw or in
// hex of either case, or -1.
func secretIn(b []byte, secrets [][]byte) int {
	low := strings.ToLower(string(b))
	for i, s := range secrets {
		if bytes.Contains(b, s) || strings.Contains(low, hex.EncodeToString(s)) {
			return i
		}
	}
	return -1
}

// TestWriteRate measures what checkpoints cost etcd at the default
// period of 1 s: one owner, a group of 20 tunnels carrying traffic and a
// group of 20 idle ones, for 10 s.
func TestWriteRate(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	groups := testGroups("busy", "quiet")
	a := startNode(t, c, "a", groups, nodeOpts{key: testClusterKey(t), period: checkpoint.DefaultPeriod})
	for _, name := range testGroupTunnels["quiet"] {
		a.gw.idle[name] = true
	}
	eventually(t, 10*time.Second, "a owns both", func() bool { return settled(t, groups, a) })
	time.Sleep(1500 * time.Millisecond)
	count := func() map[string]GroupStatus {
		out := map[string]GroupStatus{}
		for _, g := range a.Status().Groups {
			out[g.Name] = g
		}
		return out
	}
	start, t0 := count(), time.Now()
	time.Sleep(10 * time.Second)
	end, secs := count(), time.Since(t0).Seconds()
	for _, g := range []string{"busy", "quiet"} {
		txns := float64(end[g].Txns-start[g].Txns) / secs
		puts := float64(end[g].Puts-start[g].Puts) / secs
		perTunnel := (puts - txns) / 20 // one put of each transaction is the group's meta
		t.Logf("group %s (20 tunnels): %.2f transactions/s, %.2f puts/s, %.3f record writes/s per tunnel", g, txns, puts, perTunnel)
		if txns < 0.8 || txns > 1.2 {
			t.Errorf("%s: %.2f transactions a second at a period of 1 s", g, txns)
		}
		switch {
		case g == "busy" && (perTunnel < 0.8 || perTunnel > 1.2):
			t.Errorf("busy tunnels written %.2f times a second, want about once a period", perTunnel)
		case g == "quiet" && perTunnel > 1.0/refreshPeriods+0.05:
			t.Errorf("idle tunnels written %.2f times a second, want at most once every %d periods", perTunnel, refreshPeriods)
		}
	}
	a.mu.Lock()
	lat := a.groups["busy"].ckpt.Status().MaxLatency
	a.mu.Unlock()
	t.Logf("longest recent checkpoint transaction: %v", lat)
}
