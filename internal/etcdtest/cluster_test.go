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
