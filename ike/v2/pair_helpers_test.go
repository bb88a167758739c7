package v2

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// Two ISM IKEv2 daemons over an in-memory wire, on a fake clock: the
// protocol logic without root, namespaces or strongSwan, in milliseconds.

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
	netA  = netip.MustParsePrefix("198.51.100.0/24")
	netB  = netip.MustParsePrefix("203.0.113.0/24")
	t0    = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

func mustTransform(t testing.TB, name string) transform.Transform {
	t.Helper()
	tr, ok := transform.Lookup(name)
	if !ok {
		t.Fatalf("no transform %s", name)
	}
	return tr
}

// pairTunnel returns a tunnel from local to remote with the given
// subnets and transform set.
func pairTunnel(t testing.TB, name string, local, remote netip.Addr, localNet, remoteNet netip.Prefix, set ...string) ike.Tunnel {
	tu := ike.Tunnel{Name: name, Source: local, Destination: remote,
		LocalSelector: selector.FromPrefix(localNet), RemoteSelector: selector.FromPrefix(remoteNet)}
	for _, s := range set {
		tu.TransformSet = append(tu.TransformSet, mustTransform(t, s))
	}
	return tu
}

// pairConfig is a configuration with one policy (aes128-sha256-group14
// unless given) and the pair's pre-shared keys by address.
func pairConfig(clk *clocktest.Fake, policies ...ike.Policy) ike.Config {
	if len(policies) == 0 {
		policies = []ike.Policy{{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14}}
	}
	return ike.Config{
		Policies:      policies,
		PreSharedKeys: []ike.PreSharedKey{{Peer: addrA.String(), Key: ipsec.Key("pair-secret")}, {Peer: addrB.String(), Key: ipsec.Key("pair-secret")}},
		Retransmit:    ike.Retransmit{Timeout: time.Second, Base: 2, Tries: 3},
		Clock:         clk,
	}
}

// side is one daemon of a pair.
type side struct {
	d    *Daemon
	inst *iketest.Installer
	lis  *iketest.Listener
}

type pair struct {
	a, b *side
	w    *iketest.Wire
	clk  *clocktest.Fake
}

// newPair starts two daemons on a wire and a fake clock.
func newPair(t *testing.T, clk *clocktest.Fake, ca, cb ike.Config) *pair {
	t.Helper()
	w := iketest.NewWire()
	t.Cleanup(w.Close)
	mk := func(c ike.Config, addr netip.Addr, base uint32) *side {
		c.Clock = clk
		s := &side{inst: iketest.NewInstaller(base), lis: iketest.NewListener()}
		d, err := New(c, s.inst, w, s.lis)
		if err != nil {
			t.Fatal(err)
		}
		s.d = d
		d.inboundGrace = 0 // the tests below step the clock only to the rekeys
		w.Attach(addr, d)
		t.Cleanup(func() { d.Close() })
		t.Cleanup(func() { checkIndexes(t, d) }) // before Close
		return s
	}
	return &pair{a: mk(ca, addrA, 0x1000), b: mk(cb, addrB, 0x2000), w: w, clk: clk}
}

// waitEvent waits (real time: the wire delivers on goroutines) until the
// listener has recorded an event of kind on tunnel.
func waitEvent(t *testing.T, l *iketest.Listener, kind, tunnel string) iketest.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range l.Events() {
			if e.Kind == kind && e.Tunnel == tunnel {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for %s; events: %v", kind, tunnel, l.Events())
		}
		select {
		case <-l.C():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitFor polls cond (real time) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 10*time.Second, what, cond)
}

// waitWithin is waitFor with its own bound.
func waitWithin(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// countEvents returns how many events of kind the listener has for tunnel.
func countEvents(l *iketest.Listener, kind, tunnel string) int {
	n := 0
	for _, e := range l.Events() {
		if e.Kind == kind && e.Tunnel == tunnel {
			n++
		}
	}
	return n
}

// checkKeysMatch checks that each side's outbound SAs of a tunnel are the
// other's inbound SAs: same SPI, transform, keys, mode and ESN.
func checkKeysMatch(t *testing.T, a, b *side, ta, tb string) {
	t.Helper()
	waitFor(t, "both sides' SAs", func() bool {
		ain, aout, _ := a.inst.Tunnel(ta)
		bin, bout, _ := b.inst.Tunnel(tb)
		return len(ain) > 0 && len(aout) > 0 && len(bin) > 0 && len(bout) > 0
	})
	pairs := 0
	for ida, x := range a.inst.SAs() {
		for idb, y := range b.inst.SAs() {
			if ida != idb || x.Inbound == y.Inbound || x.Tunnel != ta || y.Tunnel != tb {
				continue
			}
			if !bytes.Equal(x.CipherKey, y.CipherKey) || !bytes.Equal(x.AuthKey, y.AuthKey) || x.Transform != y.Transform ||
				x.Mode != y.Mode || x.ESN != y.ESN || x.Src != y.Src || x.Dst != y.Dst {
				t.Fatalf("SA %v differs between the sides", ida)
			}
			pairs++
		}
	}
	if pairs < 2 {
		t.Fatalf("only %d matching SAs between the two sides", pairs)
	}
}

// idle reports whether the daemon has no request outstanding or queued.
func (s *side) idle() bool {
	s.d.mu.Lock()
	sas := make([]*ikeSA, 0, len(s.d.sas))
	for _, sa := range s.d.sas {
		sas = append(sas, sa)
	}
	s.d.mu.Unlock()
	for _, sa := range sas {
		sa.lock()
		busy := sa.win.busy() || len(sa.fx) > 0 || sa.flushing
		sa.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// advance moves the fake clock by d in steps shorter than the
// retransmission timeout, letting the wire deliver what each step sent
// (until both daemons are idle) before the next: an hour of lifetimes in
// milliseconds without spurious retransmissions.
func (p *pair) advance(t *testing.T, d time.Duration) {
	t.Helper()
	const step = 250 * time.Millisecond
	stuck := false // a peer that does not answer: let the timers run
	for done := time.Duration(0); done < d; done += step {
		p.clk.Advance(min(step, d-done))
		deadline := time.Now().Add(time.Second)
		for !stuck && !(p.a.idle() && p.b.idle()) {
			if time.Now().After(deadline) {
				stuck = true
			}
			time.Sleep(100 * time.Microsecond)
		}
		stuck = stuck && !(p.a.idle() && p.b.idle())
	}
}

// up has A bring the tunnel up and waits until both sides have it.
func (p *pair) up(t *testing.T, name string) {
	t.Helper()
	p.a.d.Acquire(name)
	waitEvent(t, p.a.lis, "up", name)
	waitEvent(t, p.b.lis, "up", name)
}
