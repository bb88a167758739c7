package cluster

import (
	"crypto/tls"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestConfigCheck: defaults are filled in, and what cannot work is
// refused with ErrConfig.
func TestConfigCheck(t *testing.T) {
	good := func() Config {
		return Config{Node: "gw1", Endpoints: []string{"https://192.0.2.11:2379"},
			TLS: &tls.Config{Certificates: []tls.Certificate{{}}}, Key: testClusterKey(t),
			Gateway: newTestGateway("gw1", nil, nil), Groups: testGroups("g0", "g1")}
	}
	c := good()
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	if c.TTL != 2*time.Second || c.FenceMargin != 500*time.Millisecond || c.CheckpointPeriod != time.Second || c.Prefix != "/ism/" {
		t.Fatalf("defaults: %+v", c)
	}
	for name, spoil := range map[string]func(*Config){
		"no name":          func(c *Config) { c.Node = "" },
		"bad name":         func(c *Config) { c.Node = "a/b" },
		"no endpoint":      func(c *Config) { c.Endpoints = nil },
		"no certificate":   func(c *Config) { c.TLS = &tls.Config{} },
		"fraction of TTL":  func(c *Config) { c.TTL = 1500 * time.Millisecond },
		"margin too large": func(c *Config) { c.FenceMargin = time.Second },
		"no key":           func(c *Config) { c.Key = nil },
		"no gateway":       func(c *Config) { c.Gateway = nil },
		"group twice":      func(c *Config) { c.Groups = append(c.Groups, c.Groups[0]) },
		"no VIP":           func(c *Config) { c.Groups[0].VIP = netip.Prefix{} },
		"tunnel twice":     func(c *Config) { c.Groups[1].Tunnels = c.Groups[0].Tunnels },
		"negative etcd":    func(c *Config) { c.EtcdElectionTimeout = -1 },
	} {
		c := good()
		spoil(&c)
		if err := c.check(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
