package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/clock"
)

// Defaults.
const (
	DefaultTTL    = 2 * time.Second
	DefaultPrefix = "/ism/"
)

// Group is a tunnel group: tunnels that move together, with the transport
// virtual address their peers know them by.
type Group struct {
	Name string
	// TransportVR is the virtual router (network namespace) that holds
	// the VIP; "" is the default one.
	TransportVR string
	// VIP is the virtual address and its prefix length on the
	// transport VR's interface.
	VIP     netip.Prefix
	Tunnels []string
}

// weight is what a group counts for when groups are balanced: its tunnel
// count, and at least 1.
func (g *Group) weight() int { return max(1, len(g.Tunnels)) }

// Config configures a Node.
type Config struct {
	// Node is this node's name, unique in the cluster.
	Node string
	// Endpoints are etcd's client URLs (https://host:port).
	Endpoints []string
	// TLS holds this node's client certificate and the CA that signed
	// the members' (LoadTLS); etcd must require client certificates.
	TLS *tls.Config
	// Dialer, if set, makes the connections to etcd (to reach it from a
	// management VR).
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	// Prefix is the cluster's key prefix in etcd (DefaultPrefix).
	Prefix string
	// TTL is the lease TTL, in whole seconds (DefaultTTL).
	TTL time.Duration
	// FenceMargin is how long before the lease could expire this node
	// stops owning its groups; 0 means TTL/4. It must cover Stop and the
	// clocks' rate difference (see the package documentation).
	FenceMargin time.Duration
	// EtcdElectionTimeout is etcd's --election-timeout, if known (0
	// assumes nothing). A new etcd leader extends every lease by it, so
	// a probe that proves no member leads holds the fence that much
	// longer: owners ride through a restart of the whole etcd cluster.
	// It must not exceed any member's setting.
	EtcdElectionTimeout time.Duration
	// CheckpointPeriod is how often an owner writes its groups' state
	// (checkpoint.DefaultPeriod).
	CheckpointPeriod time.Duration
	Groups           []Group
	// Key wraps the records in etcd; every node has the same one.
	Key     *checkpoint.Sealer
	Gateway Gateway
	Clock   clock.Clock  // nil: the real clock
	Logger  *slog.Logger // nil: discard
	// Events receives ownership changes, for traps and metrics. It is
	// called from the node's goroutines and must not block.
	Events func(Event)
}

// LoadTLS reads a client certificate, its key and the CA that signed the
// etcd members' certificates.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster: client certificate: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cluster: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("cluster: CA %s: no certificate", caFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("cluster: configuration")

// check fills in the defaults and refuses what cannot work.
func (c *Config) check() error {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.FenceMargin == 0 {
		c.FenceMargin = c.TTL / 4
	}
	if c.CheckpointPeriod == 0 {
		c.CheckpointPeriod = checkpoint.DefaultPeriod
	}
	c.Clock = clock.Or(c.Clock)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Events == nil {
		c.Events = func(Event) {}
	}
	switch {
	case c.Node == "" || !validName(c.Node):
		return fmt.Errorf("%w: node name %q", ErrConfig, c.Node)
	case len(c.Endpoints) == 0:
		return fmt.Errorf("%w: no etcd endpoint", ErrConfig)
	case c.TLS == nil || len(c.TLS.Certificates) == 0:
		return fmt.Errorf("%w: etcd needs a TLS client certificate", ErrConfig)
	case c.TTL%time.Second != 0 || c.TTL < time.Second:
		return fmt.Errorf("%w: lease TTL %v is not a whole number of seconds", ErrConfig, c.TTL)
	case c.FenceMargin <= 0 || c.FenceMargin >= c.TTL/2:
		return fmt.Errorf("%w: fence margin %v must be above 0 and below half the TTL %v", ErrConfig, c.FenceMargin, c.TTL)
	case c.EtcdElectionTimeout < 0:
		return fmt.Errorf("%w: negative etcd election timeout", ErrConfig)
	case c.Key == nil:
		return fmt.Errorf("%w: no cluster key", ErrConfig)
	case c.Gateway == nil:
		return fmt.Errorf("%w: no gateway", ErrConfig)
	}
	seen := map[string]bool{}
	tunnels := map[string]string{}
	for _, g := range c.Groups {
		if !validName(g.Name) || seen[g.Name] {
			return fmt.Errorf("%w: group name %q empty, invalid or repeated", ErrConfig, g.Name)
		}
		seen[g.Name] = true
		if !g.VIP.IsValid() {
			return fmt.Errorf("%w: group %s has no VIP", ErrConfig, g.Name)
		}
		for _, t := range g.Tunnels {
			if o, ok := tunnels[t]; ok {
				return fmt.Errorf("%w: tunnel %s in groups %s and %s", ErrConfig, t, o, g.Name)
			}
			tunnels[t] = g.Name
		}
	}
	return nil
}

// validName accepts the names of the configuration language: 1 to 64
// letters, digits, '_', '.' or '-', starting with a letter or digit (so a
// name never makes a key prefix of another's).
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '_' && r != '.' && r != '-') {
			return false
		}
	}
	return true
}
