// Package etcdtest runs real etcd clusters for tests (package etcdlab: etcd
// processes, never embedded and never mocked, on mutual TLS, optionally
// one namespace per member) and gives the tests etcd clients of their own.
package etcdtest

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/ismgw/ism/internal/etcdlab"
)

// Options configures a cluster (etcdlab.Options).
type Options = etcdlab.Options

// Member is one etcd process (etcdlab.Member).
type Member = etcdlab.Member

// PKI is the cluster's certificate authority (etcdlab.PKI).
type PKI = etcdlab.PKI

// Cluster is a running etcd cluster with clients for the test. It is safe
// for concurrent use.
type Cluster struct {
	*etcdlab.Cluster
	t testing.TB
}

// Start starts a cluster and waits until it serves (etcdlab.Start).
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	return &Cluster{Cluster: etcdlab.Start(t, o), t: t}
}

// NewPKI makes a CA and a member certificate (etcdlab.NewPKI).
func NewPKI(t testing.TB, dir string, ips []netip.Addr) *PKI { return etcdlab.NewPKI(t, dir, ips) }

// Dialer returns a dialer whose connections are made in ns
// (etcdlab.Dialer).
func Dialer(ns string) func(ctx context.Context, addr string) (net.Conn, error) {
	return etcdlab.Dialer(ns)
}

// ClientConfig returns a client configuration for the named client: its
// certificate, the cluster's endpoints, and in namespace mode a dialer
// from the observer namespace.
func (c *Cluster) ClientConfig(name string) clientv3.Config {
	cfg := clientv3.Config{Endpoints: c.Endpoints(), TLS: c.PKI.ClientTLS(c.t, name),
		DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
	if c.Observer != "" {
		cfg.DialOptions = []grpc.DialOption{grpc.WithContextDialer(Dialer(c.Observer))}
	}
	return cfg
}

// Client returns a client for the test, closed when the test ends.
func (c *Cluster) Client(name string) *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(c.ClientConfig(name))
	if err != nil {
		c.t.Fatalf("etcdtest: client: %v", err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}
