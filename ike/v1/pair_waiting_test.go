package v1

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
)

// TestPairWaitedPhase1Fails: a tunnel acquired while the peer's phase 1
// is in progress waits for it; when that phase 1 fails (here the peer's
// third message is lost, so this end's responder gives up), the tunnel
// negotiates on its own and comes up, instead of staying down with the
// peer's failure.
func TestPairWaitedPhase1Fails(t *testing.T) {
	t.Parallel()
	ca, cb := baseConfig(), baseConfig()
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	a, b, w := newPair(t, ca, cb)
	var mu sync.Mutex
	var bCookie Cookie
	w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		h := Header(msg)
		if local.Addr() != addrB || !h.IsValid() {
			return msg
		}
		mu.Lock()
		defer mu.Unlock()
		if h.RCookie().IsZero() && bCookie.IsZero() {
			bCookie = h.ICookie() // B's own phase 1
		}
		if h.ICookie() == bCookie && h.Flags()&FlagEncryption != 0 && h.MessageID() == 0 {
			return nil // its MM5 never arrives
		}
		return msg
	})
	b.d.Acquire("t1")
	w.waitUntil(t, 5*time.Second, "A responding to B's phase 1", func() bool {
		for _, sa := range a.d.Status().IKESAs {
			if !sa.Initiator && !sa.Established {
				return true
			}
		}
		return false
	})
	a.d.Acquire("t1") // waits for the phase 1 in progress
	w.waitEvent(t, a.lis, "up", "t1", 20*time.Second)
	w.waitEvent(t, b.lis, "up", "t1", 20*time.Second)
	checkKeysMatch(t, a, b, "t1", "t1")
	for _, sa := range a.d.Status().IKESAs {
		if sa.Established && !sa.Initiator {
			t.Errorf("established the phase 1 whose last message was lost: %+v", sa)
		}
	}
}

// TestPairRetransmitSchedule: an unanswered first message is resent on
// the configured schedule, each wait Base times the one before but never
// longer than Cap, Tries times; then phase 1 fails, one last wait later.
func TestPairRetransmitSchedule(t *testing.T) {
	t.Parallel()
	ca, cb := baseConfig(), baseConfig()
	ca.Retransmit = ike.Retransmit{Timeout: time.Second, Base: 2, Tries: 4, Cap: 3 * time.Second}
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	a, _, w := newPair(t, ca, cb)
	var mu sync.Mutex
	var sent []time.Time
	w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		if local.Addr() == addrA {
			mu.Lock()
			sent = append(sent, w.clk.Now())
			mu.Unlock()
		}
		return nil // B never hears A
	})
	start := w.clk.Now()
	a.d.Acquire("t1")
	failed := w.waitEvent(t, a.lis, "failed", "t1", time.Minute)
	mu.Lock()
	defer mu.Unlock()
	var gaps []time.Duration
	for i := 1; i < len(sent); i++ {
		gaps = append(gaps, sent[i].Sub(sent[i-1]))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
	if fmt.Sprint(gaps) != fmt.Sprint(want) || sent[0] != start {
		t.Errorf("first message at %v, resent after %v; want at once, then after %v", sent[0].Sub(start), gaps, want)
	}
	if got := w.clk.Now().Sub(start); got != 12*time.Second {
		t.Errorf("phase 1 failed %v after it started, want 12s (the last resend and a capped wait)", got)
	}
	if c := a.d.Status().Counters; c.Retransmits != 4 {
		t.Errorf("%d retransmissions counted, want 4", c.Retransmits)
	}
	t.Logf("failed: %v", failed)
}
