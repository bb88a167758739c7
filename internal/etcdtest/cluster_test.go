package etcdtest

import (
	"context"
	clientv3 "go.etcd.io/etcd/client/v3"
	"testing"
	"time"
)

func get(c *Cluster, key string, timeout time.Duration) error {
	cli := c.Client("probe")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := cli.Get(ctx, key)
	return err
}

// TestQuorum: three real members on loopback with mutual TLS; with one
// killed the cluster serves, with two it does not, and a killed member
// started again on its data brings it back.
func TestQuorum(t *testing.T) {
	c := Start(t, Options{})
	cli := c.Client("writer")
	if _, err := cli.Put(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	pid := c.Members[0].Pid()
	c.Members[0].Kill()
	if pid == 0 || c.Members[0].Pid() != 0 {
		t.Fatalf("pid %d", pid)
	}
	if err := get(c, "k", 3*time.Second); err != nil {
		t.Fatalf("two of three: %v", err)
	}
	c.Members[1].Kill()
	if err := get(c, "k", 2*time.Second); err == nil {
		t.Fatal("one of three still served a linearizable read")
	}
	c.Members[0].Start()
	c.WaitReady(20 * time.Second)
}

// TestTLSRequired: a client without a certificate is refused.
func TestTLSRequired(t *testing.T) {
	c := Start(t, Options{})
	cfg := c.ClientConfig("anon")
	cfg.TLS.Certificates = nil
	anon, err := clientv3.New(cfg)
	if err == nil {
		defer anon.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := anon.Get(ctx, "k"); err == nil {
			t.Fatal("a client without a certificate read from the cluster")
		}
	}
}

// TestNamespaces: members in namespaces of their own; a member cut off the
// hub leaves a quorum, and a node namespace reaches the members.
func TestNamespaces(t *testing.T) {
	c := Start(t, Options{Namespaces: true})
	node := c.Attach("node")
	c.Cut(c.Members[2].NS)
	if err := get(c, "k", 5*time.Second); err != nil {
		t.Fatalf("with one member cut off: %v", err)
	}
	conn, err := Dialer(node)(context.Background(), c.Members[0].Addr.String()+":2379")
	if err != nil {
		t.Fatalf("from the node's namespace: %v", err)
	}
	conn.Close()
	c.Cut(node)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := Dialer(node)(ctx, c.Members[0].Addr.String()+":2379"); err == nil {
		t.Fatal("a cut namespace still connects")
	}
	c.Mend(c.Members[2].NS)
}

// TestObserver: what etcdlab observes without etcd's client (for
// ismbench): the raft term, which a leader election raises, and the
// deletes under a prefix, put and lease-expiry ones alike, not the puts.
func TestObserver(t *testing.T) {
	c := Start(t, Options{Args: []string{"--heartbeat-interval", "50", "--election-timeout", "500"}})
	term := c.RaftTerm()
	if term == 0 {
		t.Fatal("no raft term read")
	}
	cli := c.Client("observer-test")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deletes := make(chan time.Time, 8)
	if err := c.WatchDeletes(ctx, "/w/", func(at time.Time) { deletes <- at }); err != nil {
		t.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"/w/a", "/x/b"} {
		if _, err := cli.Put(ctx, k, "v", clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case at := <-deletes:
		t.Fatalf("a delete seen at %v before the lease expired", at)
	case <-time.After(200 * time.Millisecond):
	}
	select {
	case <-deletes: // the lease expired: /w/a deleted
	case <-time.After(10 * time.Second):
		t.Fatal("the lease's expiry not seen")
	}

	// Kill the leader: another is elected, in a higher term.
	for _, m := range c.Members {
		st, err := cli.Status(ctx, m.ClientURL)
		if err == nil && st.Leader == st.Header.MemberId {
			m.Kill()
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.RaftTerm() <= term {
		if time.Now().After(deadline) {
			t.Fatalf("raft term still %d after the leader was killed", c.RaftTerm())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
