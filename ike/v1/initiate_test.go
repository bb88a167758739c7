package v1

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// TestInitiationsTakeTurns: traffic into more tunnels at once than the
// phase 1 negotiations A runs at a time (maxInitiating, 2 here; each
// tunnel from its own address, so each needs its own IKE SA) starts that
// many, and the others wait their turn, in order, and come up as places
// free. Started all at once (10,000 tunnels after their peer's restart),
// their Diffie-Hellman exchanges overflowed the sockets and timed out.
func TestInitiationsTakeTurns(t *testing.T) {
	t.Parallel()
	const n = 5
	ca, cb := baseConfig(), baseConfig()
	var locals []netip.Addr
	for i := range n {
		local := netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)})
		locals = append(locals, local)
		name := fmt.Sprintf("t%d", i)
		na := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(16 * i)}), 28)
		ca.Tunnels = append(ca.Tunnels, pairTunnel(t, name, local, addrB, na, netB, "esp-aes128-gcm16"))
		cb.Tunnels = append(cb.Tunnels, pairTunnel(t, name, addrB, local, netB, na, "esp-aes128-gcm16"))
		cb.PreSharedKeys = append(cb.PreSharedKeys, ike.PreSharedKey{Peer: local.String(), Key: ipsec.Key("pair-secret")})
	}
	w := newSim(t)
	a, b := newSide(t, w, ca, locals[0], 0x1000), newSide(t, w, cb, addrB, 0x2000)
	for _, l := range locals[1:] {
		w.Attach(l, a.d)
	}
	a.d.mu.Lock()
	a.d.maxInitiating = 2
	a.d.mu.Unlock()
	for i := range n {
		a.d.Acquire(fmt.Sprintf("t%d", i))
	}
	a.d.mu.Lock()
	running, queued := a.d.initiating, len(a.d.initQueue)
	a.d.mu.Unlock()
	if running != 2 || queued != n-2 {
		t.Errorf("%d phase 1s running and %d waiting, want 2 and %d", running, queued, n-2)
	}
	for i := range n {
		w.waitEvent(t, a.lis, "up", fmt.Sprintf("t%d", i), 10*time.Second)
		w.waitEvent(t, b.lis, "up", fmt.Sprintf("t%d", i), 10*time.Second)
	}
	w.settle(t)
	a.d.mu.Lock()
	running, queued = a.d.initiating, len(a.d.initQueue)
	a.d.mu.Unlock()
	if running != 0 || queued != 0 {
		t.Errorf("with every tunnel up: %d phase 1s running, %d waiting", running, queued)
	}
	for i := range n {
		if st := tunnelStatus(t, a.d, fmt.Sprintf("t%d", i)); st.Attempts != 1 {
			t.Errorf("t%d: %d attempts counted, want 1 (a turn waited for is not an attempt)", i, st.Attempts)
		}
	}
	if c := a.d.Status().Counters; c.Phase1Established != n || c.Retransmits != 0 {
		t.Errorf("%d phase 1s established, %d retransmissions: want %d and 0", c.Phase1Established, c.Retransmits, n)
	}
}

// TestInitiationTurnSettledByPeer: while A's acquire for t1 waits for its
// turn (the one place is held by a phase 1 to a peer that never answers),
// B brings t1 up; when the turn comes, the acquire is done and A starts
// no second quick mode.
func TestInitiationTurnSettledByPeer(t *testing.T) {
	t.Parallel()
	ca, cb := baseConfig(), baseConfig()
	dead := netip.MustParseAddr("192.0.2.3")
	ca.Tunnels = []ike.Tunnel{
		pairTunnel(t, "dead", addrA, dead, netip.MustParsePrefix("198.51.100.0/28"), netB, "esp-aes128-gcm16"),
		pairTunnel(t, "t1", addrA, addrB, netip.MustParsePrefix("198.51.100.128/25"), netB, "esp-aes128-gcm16"),
	}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netip.MustParsePrefix("198.51.100.128/25"), "esp-aes128-gcm16")}
	ca.PreSharedKeys = append(ca.PreSharedKeys, ike.PreSharedKey{Peer: dead.String(), Key: ipsec.Key("pair-secret")})
	w := newSim(t)
	a, b := newSide(t, w, ca, addrA, 0x1000), newSide(t, w, cb, addrB, 0x2000)
	a.d.mu.Lock()
	a.d.maxInitiating = 1
	a.d.mu.Unlock()
	a.d.Acquire("dead")
	a.d.Acquire("t1")
	a.d.mu.Lock()
	queued := len(a.d.initQueue)
	a.d.mu.Unlock()
	if queued != 1 {
		t.Fatalf("%d plans waiting, want 1", queued)
	}
	b.d.Acquire("t1")
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	w.waitUntil(t, time.Minute, "the dead peer's phase 1 given up and t1's turn taken", func() bool {
		a.d.mu.Lock()
		defer a.d.mu.Unlock()
		return a.d.initiating == 0 && len(a.d.initQueue) == 0
	})
	w.sleep(t, 5*time.Second)
	if _, out, _ := a.inst.Tunnel("t1"); len(out) != 1 {
		t.Errorf("A has %d outbound SAs for t1, want 1 (B's quick mode answered the acquire)", len(out))
	}
	if st := tunnelStatus(t, a.d, "t1"); st.State != "up" || st.Attempts != 0 {
		t.Errorf("t1: %s, %d attempts of its own, want up and 0", st.State, st.Attempts)
	}
}
