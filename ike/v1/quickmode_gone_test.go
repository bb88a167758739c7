package v1

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
)

// TestQuickModeOnDeletedIKESA: a quick mode whose IKE SA is deleted (its
// keys zeroed) between the dispatch of its first message, or its start as
// initiator, and its first step fails with errIKESAGone, instead of
// dereferencing the zeroed cipher (a panic ismbench scale hit at 10,000
// tunnels).
func TestQuickModeOnDeletedIKESA(t *testing.T) {
	t.Parallel()
	ca, cb := baseConfig(), baseConfig()
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	a, b, w := newPair(t, ca, cb)
	a.d.Acquire("t1")
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	var sa *ikeSA
	b.d.mu.Lock()
	for _, s := range b.d.sas {
		sa = s
	}
	b.d.mu.Unlock()
	b.d.removeIKESA(sa)

	q := &quickMode{d: b.d, ex: b.d.newExchange(sa, 7), sa: sa}
	if _, err := q.runResponder(packet{local: netip.AddrPortFrom(addrB, 500), remote: netip.AddrPortFrom(addrA, 500)}); err != errIKESAGone {
		t.Errorf("responder on a deleted IKE SA: %v, want %v", err, errIKESAGone)
	}
	b.d.mu.Lock()
	tu := b.d.tunnels["t1"]
	plan := &qmPlan{tu: tu, local: tu.cfg.LocalSelector, remote: tu.cfg.RemoteSelector, retry: tu.retryFor(tu.cfg.LocalSelector, tu.cfg.RemoteSelector)}
	b.d.mu.Unlock()
	b.d.startQuickMode(plan, sa) // must not panic
	w.waitFor(t, b.lis, 10*time.Second, "the failed quick mode", func(e iketest.Event) bool {
		return e.Kind == "failed" && e.Tunnel == "t1" && strings.Contains(e.Reason, "deleted")
	})
	checkPairIndex(t, b.d)
}
