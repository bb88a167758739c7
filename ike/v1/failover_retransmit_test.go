package v1

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
)

// TestPairFailoverWrongKeySchedule: the destination has another
// pre-shared key, cannot decrypt main mode's fifth message and stays
// silent; A sends it again on the configured schedule (0.5 s, then twice
// as long each time but at most 1.5 s, three resends) and fails over to
// the backup one capped wait after the last resend, 4.5 s after the first
// sending, instead of the built-in schedule's 82.5 s.
func TestPairFailoverWrongKeySchedule(t *testing.T) {
	t.Parallel()
	ca, cb, cc := baseConfig(), baseConfig(), baseConfig()
	ca.Retransmit = ike.Retransmit{Timeout: 500 * time.Millisecond, Base: 2, Tries: 3, Cap: 1500 * time.Millisecond}
	ca.PreSharedKeys = append(ca.PreSharedKeys, ike.PreSharedKey{Peer: addrC.String(), Key: ipsec.Key("pair-secret")})
	cb.PreSharedKeys = []ike.PreSharedKey{{Peer: addrA.String(), Key: ipsec.Key("another-secret")}}
	cc.PreSharedKeys = []ike.PreSharedKey{{Peer: addrA.String(), Key: ipsec.Key("pair-secret")}}
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")
	ta.BackupDestination = addrC
	ca.Tunnels = []ike.Tunnel{ta}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	cc.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrC, addrA, netB, netA, "esp-aes128-hmac-sha")}
	w := newSim(t)
	var mu sync.Mutex
	var mm5 []time.Time // A's encrypted main mode messages to B
	w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		h := Header(msg)
		if local.Addr() == addrA && remote.Addr() == addrB && h.IsValid() && h.Flags()&FlagEncryption != 0 && h.MessageID() == 0 {
			mu.Lock()
			mm5 = append(mm5, w.clk.Now())
			mu.Unlock()
		}
		return msg
	})
	a := newSide(t, w, ca, addrA, 0x1000)
	newSide(t, w, cb, addrB, 0x2000)
	c := newSide(t, w, cc, addrC, 0x3000)
	a.d.Acquire("t1")
	w.waitFor(t, a.lis, 30*time.Second, "failover", func(e iketest.Event) bool { return e.Kind == "failover" })
	failedAt := w.clk.Now()
	w.waitEvent(t, c.lis, "up", "t1", 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(mm5) == 0 {
		t.Fatal("A sent no fifth message")
	}
	var at []time.Duration
	for _, s := range mm5 {
		at = append(at, s.Sub(mm5[0]))
	}
	if got, want := fmt.Sprint(at), "[0s 500ms 1.5s 3s]"; got != want {
		t.Errorf("MM5 sent at %s, want %s", got, want)
	}
	if took := failedAt.Sub(mm5[0]); took != 4500*time.Millisecond {
		t.Errorf("failover %v after the first MM5, want 4.5s", took)
	}
}

// TestPairNoRetransmit: a negative Tries (the configuration's "count 0")
// sends the first message once and gives up one timeout later.
func TestPairNoRetransmit(t *testing.T) {
	t.Parallel()
	ca, cb := baseConfig(), baseConfig()
	ca.Retransmit = ike.Retransmit{Timeout: time.Second, Base: 2, Tries: -1}
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")}
	a, _, w := newPair(t, ca, cb)
	var mu sync.Mutex
	sent := 0
	w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		if local.Addr() == addrA {
			sent++
		}
		return nil
	})
	start := w.clk.Now()
	a.d.Acquire("t1")
	w.waitEvent(t, a.lis, "failed", "t1", time.Minute)
	mu.Lock()
	defer mu.Unlock()
	if took := w.clk.Now().Sub(start); sent != 1 || took != time.Second {
		t.Errorf("%d messages sent, failed after %v; want one and 1s", sent, took)
	}
}
