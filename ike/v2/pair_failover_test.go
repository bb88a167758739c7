package v2

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
)

// Failover of IKEv2 tunnels, as ike/v1 does it: A's tunnel goes to B with
// C as its backup destination.

var addrC = netip.MustParseAddr("192.0.2.3")

// addSide starts a third daemon on the pair's wire.
func (p *pair) addSide(t *testing.T, c ike.Config, addr netip.Addr, base uint32) *side {
	t.Helper()
	c.Clock = p.clk
	s := &side{inst: iketest.NewInstaller(base), lis: iketest.NewListener()}
	d, err := New(c, s.inst, p.w, s.lis)
	if err != nil {
		t.Fatal(err)
	}
	s.d = d
	p.w.Attach(addr, d)
	t.Cleanup(func() { d.Close() })
	return s
}

// outage drops every datagram to or from the addresses marked down.
type outage struct {
	mu   sync.Mutex
	down map[netip.Addr]bool
}

func (o *outage) set(a netip.Addr, down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down[a] = down
}

func (o *outage) filter(local, remote netip.AddrPort, msg []byte) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down[local.Addr()] || o.down[remote.Addr()] {
		return nil
	}
	return msg
}

// failoverTrio is A with tunnel t1 to B (backup C, DPD on, the given
// hold-down), B and C with a tunnel to A each.
func failoverTrio(t *testing.T, hold time.Duration) (*pair, *side, *outage) {
	t.Helper()
	clk := clocktest.New(t0)
	ca, cb, cc := pairConfig(clk), pairConfig(clk), pairConfig(clk)
	ca.PreSharedKeys = append(ca.PreSharedKeys, ike.PreSharedKey{Peer: addrC.String(), Key: ipsec.Key("pair-secret")})
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")
	ta.BackupDestination = addrC
	ta.FailoverHoldDown = hold
	ta.DPD = &ipsec.DPD{Enabled: true, Sent: 10 * time.Second, Silent: 20 * time.Second, Idle: 30 * time.Second,
		RetryInterval: 2 * time.Second, Retries: 2}
	ca.Tunnels = []ike.Tunnel{ta}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	cc.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrC, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	c := p.addSide(t, cc, addrC, 0x3000)
	o := &outage{down: map[netip.Addr]bool{}}
	p.w.SetFilter(o.filter)
	return p, c, o
}

// TestPairFailoverDPD: B stops answering; DPD declares it dead, the
// tunnel goes down, switches to C (Failover), and comes up there; the
// status tells the story.
func TestPairFailoverDPD(t *testing.T) {
	p, c, o := failoverTrio(t, time.Minute)
	p.up(t, "t1")
	o.set(addrB, true)
	p.advance(t, 45*time.Second)
	waitEvent(t, p.a.lis, "dead", "t1")
	f := waitEvent(t, p.a.lis, "failover", "t1")
	if f.From != addrB || f.To != addrC {
		t.Fatalf("failover %v", f)
	}
	checkIndexes(t, p.a.d) // right after the switch
	waitEvent(t, c.lis, "up", "t1")
	// The listener hears of the tunnel up just after its status says so.
	waitFor(t, "t1 up at C", func() bool {
		st := p.a.d.Status().Tunnels[0]
		return st.State == "up" && st.Peer.Addr() == addrC && countEvents(p.a.lis, "up", "t1") == 2
	})
	checkKeysMatch(t, p.a, c, "t1", "t1")
	kinds := []string{}
	for _, e := range p.a.lis.Events() {
		kinds = append(kinds, e.Kind)
	}
	if got := strings.Join(kinds, " "); got != "up dead down failover up" {
		t.Fatalf("events %q", got)
	}
	st := p.a.d.Status().Tunnels[0]
	fo := st.Failover
	if st.Destination != addrC || !fo.OnBackup || fo.Count != 1 || fo.LastFrom != addrB || fo.LastTo != addrC ||
		fo.LastDuration <= 0 || fo.InProgress || fo.HoldDownUntil.IsZero() {
		t.Fatalf("status %+v", st)
	}
	if p.a.d.Status().Counters.Failovers != 1 {
		t.Fatal("failover not counted")
	}
}

// TestPairFailoverSetupHoldDown: B is down from the start: IKE_SA_INIT
// goes unanswered, the tunnel switches to C; C does not answer either,
// and the switch back to B waits for the hold-down; when it ends (B is
// back by then) the tunnel comes up at B.
func TestPairFailoverSetupHoldDown(t *testing.T) {
	p, c, o := failoverTrio(t, 5*time.Minute)
	o.set(addrB, true)
	o.set(addrC, true)
	p.a.d.Acquire("t1")
	p.advance(t, 20*time.Second) // 1+2+4+8 s of retransmissions
	f := waitEvent(t, p.a.lis, "failover", "t1")
	if f.From != addrB || f.To != addrC {
		t.Fatalf("failover %v", f)
	}
	p.advance(t, 20*time.Second)
	waitFor(t, "the second failure", func() bool { return countEvents(p.a.lis, "failed", "t1") >= 2 })
	st := p.a.d.Status().Tunnels[0]
	if !st.Failover.Pending || st.Failover.Count != 1 || countEvents(p.a.lis, "failover", "t1") != 1 {
		t.Fatalf("held down: %+v", st.Failover)
	}
	o.set(addrB, false)
	p.advance(t, 5*time.Minute)
	waitEvent(t, p.b.lis, "up", "t1")
	st = p.a.d.Status().Tunnels[0]
	if st.State != "up" || st.Peer.Addr() != addrB || st.Failover.Count != 2 || st.Failover.OnBackup || st.Failover.Pending {
		t.Fatalf("after the hold-down: %+v", st)
	}
	if countEvents(c.lis, "up", "t1") != 0 {
		t.Fatal("C came up")
	}
}
