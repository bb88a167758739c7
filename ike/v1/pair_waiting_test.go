package v1

import (
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
