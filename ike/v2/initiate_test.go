package v2

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// TestInitiationsTakeTurns: with room for two IKE SAs being set up at
// once, five acquires to five peers start two IKE_SA_INITs and wait; each
// IKE SA established lets the next acquire start, until every tunnel is
// up, each counted as one attempt. The first two IKE_SA_INITs are lost,
// so that nothing moves until their retransmission: the three others
// wait for the first two, not for a timer.
func TestInitiationsTakeTurns(t *testing.T) {
	t.Parallel()
	const n = 5
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
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
	p := newPair(t, clk, ca, cb)
	for _, l := range locals {
		p.w.Attach(l, p.a.d)
	}
	p.a.d.mu.Lock()
	p.a.d.maxInitiating = 2
	p.a.d.mu.Unlock()
	lost := 0
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		if remote.Addr() == addrB && lost < 2 {
			lost++ // the wire runs the filter under its lock
			return nil
		}
		return msg
	})
	for i := range n {
		p.a.d.Acquire(fmt.Sprintf("t%d", i))
	}
	waitFor(t, "the first two IKE_SA_INITs sent", func() bool {
		p.a.d.mu.Lock()
		defer p.a.d.mu.Unlock()
		return len(p.a.d.sas) == 2
	})
	p.a.d.mu.Lock()
	running, queued := p.a.d.initiating, len(p.a.d.initQueue)
	p.a.d.mu.Unlock()
	if running != 2 || queued != n-2 {
		t.Errorf("%d IKE SAs being set up and %d acquires waiting, want 2 and %d", running, queued, n-2)
	}
	p.advance(t, 1500*time.Millisecond) // the retransmission timeout: 1 s
	for i := range n {
		waitEvent(t, p.a.lis, "up", fmt.Sprintf("t%d", i))
		waitEvent(t, p.b.lis, "up", fmt.Sprintf("t%d", i))
	}
	p.a.d.mu.Lock()
	running, queued = p.a.d.initiating, len(p.a.d.initQueue)
	p.a.d.mu.Unlock()
	if running != 0 || queued != 0 {
		t.Errorf("with every tunnel up: %d IKE SAs being set up, %d acquires waiting", running, queued)
	}
	for i := range n {
		if st := tunnelStatus(t, p.a.d, fmt.Sprintf("t%d", i)); st.Attempts != 1 {
			t.Errorf("t%d: %d attempts counted, want 1 (a turn waited for is not an attempt)", i, st.Attempts)
		}
	}
	if c := p.a.d.Status().Counters; c.Phase1Established != n || c.Retransmits != 2 {
		t.Errorf("%d IKE SAs established, %d retransmissions: want %d and 2", c.Phase1Established, c.Retransmits, n)
	}
}

// TestInitiationTurnPassedOver: an acquire that waits for its turn is
// passed over when its tunnel is removed meanwhile, and the place goes to
// the next one; a failed IKE SA gives its place back too.
func TestInitiationTurnPassedOver(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	addrC := netip.MustParseAddr("192.0.2.3") // nobody answers there
	ca.Tunnels = []ike.Tunnel{
		pairTunnel(t, "dead", addrA, addrC, netip.MustParsePrefix("198.51.100.0/28"), netB, "esp-aes128-gcm16"),
		pairTunnel(t, "gone", addrA, netip.MustParseAddr("192.0.2.4"), netip.MustParsePrefix("198.51.100.16/28"), netB, "esp-aes128-gcm16"),
		pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16"),
	}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.a.d.mu.Lock()
	p.a.d.maxInitiating = 1
	p.a.d.mu.Unlock()
	for _, name := range []string{"dead", "gone", "t1"} {
		p.a.d.Acquire(name)
	}
	p.a.d.mu.Lock()
	queued := len(p.a.d.initQueue)
	p.a.d.mu.Unlock()
	if queued != 2 {
		t.Fatalf("%d acquires waiting, want 2", queued)
	}
	cfg := ca
	cfg.Tunnels = []ike.Tunnel{ca.Tunnels[0], ca.Tunnels[2]}
	if err := p.a.d.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	// The dead peer's IKE SA fails after its retransmissions (1 s, 2 s,
	// 4 s, then 8 s for the last answer): its place goes to t1.
	p.advance(t, 16*time.Second)
	waitEvent(t, p.a.lis, "up", "t1")
	p.a.d.mu.Lock()
	running, queued := p.a.d.initiating, len(p.a.d.initQueue)
	p.a.d.mu.Unlock()
	if running != 0 || queued != 0 {
		t.Errorf("%d IKE SAs being set up, %d acquires waiting, want none", running, queued)
	}
	if n := p.a.d.Status().Counters.Phase1Established; n != 1 {
		t.Errorf("%d IKE SAs established, want 1 (t1's; gone's acquire passed over)", n)
	}
}

// TestInitiationTurnSettledByPeer: while A's acquire for t1 waits for its
// turn, B brings t1 up; when the turn comes, the acquire is done and A
// starts no second child SA.
func TestInitiationTurnSettledByPeer(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ca.Tunnels = []ike.Tunnel{
		pairTunnel(t, "dead", addrA, netip.MustParseAddr("192.0.2.3"), netip.MustParsePrefix("198.51.100.0/28"), netB, "esp-aes128-gcm16"),
		pairTunnel(t, "t1", addrA, addrB, netip.MustParsePrefix("198.51.100.128/25"), netB, "esp-aes128-gcm16"),
	}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netip.MustParsePrefix("198.51.100.128/25"), "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.a.d.mu.Lock()
	p.a.d.maxInitiating = 1
	p.a.d.mu.Unlock()
	p.a.d.Acquire("dead")
	p.a.d.Acquire("t1")
	p.b.d.Acquire("t1")
	waitEvent(t, p.a.lis, "up", "t1")
	p.advance(t, 16*time.Second) // the dead peer's IKE SA fails: t1's turn
	waitFor(t, "the turn taken", func() bool {
		p.a.d.mu.Lock()
		defer p.a.d.mu.Unlock()
		return p.a.d.initiating == 0 && len(p.a.d.initQueue) == 0
	})
	p.advance(t, time.Second)
	if _, out, _ := p.a.inst.Tunnel("t1"); len(out) != 1 {
		t.Errorf("A has %d outbound SAs for t1, want 1 (B's child answered the acquire)", len(out))
	}
	if st := tunnelStatus(t, p.a.d, "t1"); st.State != "up" {
		t.Errorf("t1 is %s", st.State)
	}
}

// spiless is an Installer that has no SPI to give.
type spiless struct{ *iketest.Installer }

func (spiless) AllocateSPI(string, transform.Protocol, netip.Addr) (uint32, error) {
	return 0, errors.New("no SPI left")
}

// TestAuthNotBuiltFails: an IKE_AUTH that cannot be built (here, no SPI
// for its child SA) is never sent and has no timeout: the IKE SA fails at
// once, the tunnel's negotiation with it, and its initiation place is
// given back. Before, the SA waited for ever, holding the place.
func TestAuthNotBuiltFails(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	lis := iketest.NewListener()
	d, err := New(ca, spiless{iketest.NewInstaller(0x3000)}, p.w, lis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	p.w.Attach(addrA, d) // in A's place
	d.Acquire("t1")
	e := waitEvent(t, lis, "failed", "t1")
	if !strings.Contains(e.Reason, "no SPI left") {
		t.Errorf("t1 failed: %q, want the reason IKE_AUTH was not sent", e.Reason)
	}
	waitFor(t, "the IKE SA gone and its place given back", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.sas) == 0 && d.initiating == 0
	})
}
