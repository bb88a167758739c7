package v1

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// Two ISM daemons negotiating with each other over an in-memory wire: the
// protocol logic without root, namespaces or strongSwan.

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
	netA  = netip.MustParsePrefix("198.51.100.0/24")
	netB  = netip.MustParsePrefix("203.0.113.0/24")
)

func mustTransform(t testing.TB, name string) transform.Transform {
	t.Helper()
	tr, ok := transform.Lookup(name)
	if !ok {
		t.Fatalf("no transform %s", name)
	}
	return tr
}

// pairSide is one daemon of a pair.
type pairSide struct {
	d    *Daemon
	inst *iketest.Installer
	lis  *iketest.Listener
}

// pairTunnel returns a tunnel from local to remote with the test subnets.
func pairTunnel(t testing.TB, name string, local, remote netip.Addr, localNet, remoteNet netip.Prefix, set ...string) ike.Tunnel {
	tu := ike.Tunnel{Name: name, Source: local, Destination: remote,
		LocalSelector: selector.FromPrefix(localNet), RemoteSelector: selector.FromPrefix(remoteNet)}
	for _, s := range set {
		tu.TransformSet = append(tu.TransformSet, mustTransform(t, s))
	}
	return tu
}

func baseConfig(policies ...ike.Policy) ike.Config {
	if len(policies) == 0 {
		policies = []ike.Policy{{Encryption: ike.EncAES128, Hash: ike.HashSHA1, Auth: ike.AuthPSK, Group: 14}}
	}
	return ike.Config{
		Policies:      policies,
		PreSharedKeys: []ike.PreSharedKey{{Peer: addrA.String(), Key: ipsec.Key("pair-secret")}, {Peer: addrB.String(), Key: ipsec.Key("pair-secret")}},
		Retransmit:    ike.Retransmit{Timeout: 200 * time.Millisecond, Base: 1.5, Tries: 4},
	}
}

// newTestWire returns a wire closed when the test ends.
func newTestWire(t testing.TB) *iketest.Wire {
	w := iketest.NewWire()
	t.Cleanup(w.Close)
	return w
}

// newPair starts two daemons on a sim's wire and clock.
func newPair(t *testing.T, ca, cb ike.Config) (a, b *pairSide, w *sim) {
	t.Helper()
	w = newSim(t)
	return newSide(t, w, ca, addrA, 0x1000), newSide(t, w, cb, addrB, 0x2000), w
}

// waitEvent waits until the listener has recorded an event of kind on
// tunnel, and returns the first such event.
func waitEvent(t *testing.T, l *iketest.Listener, kind, tunnel string, within time.Duration) iketest.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, e := range l.Events() {
			if e.Kind == kind && e.Tunnel == tunnel {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for %s within %v; events: %v", kind, tunnel, within, l.Events())
		}
		select {
		case <-l.C():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkKeysMatch checks that each side's outbound SA is the other's
// inbound SA: same SPI, transform and keys.
func checkKeysMatch(t *testing.T, a, b *pairSide, ta, tb string) {
	t.Helper()
	ain, aout, _ := a.inst.Tunnel(ta)
	bin, bout, _ := b.inst.Tunnel(tb)
	if len(ain) == 0 || len(aout) == 0 || len(bin) == 0 || len(bout) == 0 {
		t.Fatalf("missing SAs: a %d/%d b %d/%d", len(ain), len(aout), len(bin), len(bout))
	}
	pairs := 0
	for _, x := range a.inst.SAs() {
		for id, y := range b.inst.SAs() {
			_ = id
			if x.Inbound == y.Inbound || x.Tunnel != ta || y.Tunnel != tb {
				continue
			}
			if x.Src != y.Src || x.Dst != y.Dst {
				continue
			}
			if bytes.Equal(x.CipherKey, y.CipherKey) && bytes.Equal(x.AuthKey, y.AuthKey) && x.Transform == y.Transform {
				pairs++
			}
		}
	}
	if pairs < 2 {
		t.Fatalf("only %d matching SA pairs between the two sides", pairs)
	}
}

func TestPairMainModePSK(t *testing.T) {
	ca, cb := baseConfig(), baseConfig()
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-3des-hmac-sha", "esp-aes128-hmac-sha")}
	a, b, w := newPair(t, ca, cb)
	a.d.Acquire("t1")
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	checkKeysMatch(t, a, b, "t1", "t1")
	st := a.d.Status()
	if len(st.IKESAs) != 1 || !st.IKESAs[0].Established {
		t.Fatalf("IKE SAs: %+v", st.IKESAs)
	}
	if st.Tunnels[0].State != "up" || st.Tunnels[0].Transform.Name() != "esp-aes128-hmac-sha" {
		t.Fatalf("tunnel status: %+v", st.Tunnels[0])
	}
}
