package v2

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
)

// acquireStatus returns A's negotiation of a child to remote, and the
// tunnel's child SAs.
func acquireStatus(s *side, remote string) (ike.NegotiationStatus, []ike.ChildStatus) {
	for _, tu := range s.d.Status().Tunnels {
		if tu.Name != "t1" {
			continue
		}
		for _, n := range tu.Negotiations {
			if n.Remote.String() == remote {
				return n, tu.Children
			}
		}
		return ike.NegotiationStatus{}, tu.Children
	}
	return ike.NegotiationStatus{}, nil
}

// TestPairAcquireBackoff: B's tunnel is the lower half of A's. A's first
// acquire is narrowed by B to that half (RFC 7296 §2.9); traffic to the
// other half makes A negotiate a child for it alone, which B refuses
// (TS_UNACCEPTABLE). The next attempt waits 1 s, then 2 s (traffic in
// between starts none), and the failure is reported to the listener once.
func TestPairAcquireBackoff(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netip.MustParsePrefix("203.0.113.0/25"), netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	a := netip.MustParseAddr
	src := a("198.51.100.1")

	p.a.d.AcquireFor("t1", src, a("203.0.113.1"))
	waitEvent(t, p.a.lis, "up", "t1")
	_, children := acquireStatus(p.a, "")
	if len(children) != 1 || children[0].Remote.String() != "203.0.113.0/25" || children[0].Local.String() != netA.String() {
		t.Fatalf("A's child SAs after B narrowed: %+v, want one to 203.0.113.0/25", children)
	}

	const upper = "203.0.113.128/25"
	attempt := func(want int, what string) ike.NegotiationStatus {
		t.Helper()
		p.a.d.AcquireFor("t1", src, a("203.0.113.200"))
		p.advance(t, 10*time.Millisecond)
		var n ike.NegotiationStatus
		waitFor(t, what, func() bool { n, _ = acquireStatus(p.a, upper); return n.Failures == n.Attempts && n.Attempts > 0 })
		if n.Attempts != want {
			t.Fatalf("%s: %d attempts, want %d (%+v)", what, n.Attempts, want, n)
		}
		return n
	}
	n := attempt(1, "the first refusal")
	if wait := n.NextAttempt.Sub(clk.Now()); n.LastError == "" || wait <= 0 || wait > time.Second {
		t.Errorf("after one refusal: %+v, want the next attempt within 1 s", n)
	}
	attempt(1, "traffic during the first wait")
	p.advance(t, time.Second)
	attempt(2, "the second refusal")
	p.advance(t, time.Second)
	attempt(2, "traffic 1 s into the 2 s wait")
	p.advance(t, time.Second)
	n = attempt(3, "the third refusal")
	if got := countEvents(p.a.lis, "failed", "t1"); got != 1 {
		t.Errorf("%d NegotiationFailed reports for %d refusals for one reason, want 1", got, n.Failures)
	}
	if _, children := acquireStatus(p.a, upper); len(children) != 1 {
		t.Errorf("the refusals took A's child SA: %+v", children)
	}
}
