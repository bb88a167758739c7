package v2

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
)

// TestPairPFS applies the seed's PFS rules to a rekey with PFS: a
// responder that mandates a stronger group refuses the proposal; one with
// a weaker or no group accepts it, with the initiator's group.
func TestPairPFS(t *testing.T) {
	for _, c := range []struct{ a, b, want int }{{14, 31, 0}, {31, 14, 31}, {20, 0, 20}} {
		clk := clocktest.New(t0)
		ca, cb := pairConfig(clk), pairConfig(clk)
		ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")
		tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")
		ta.PFSGroup, tb.PFSGroup = c.a, c.b
		ta.Lifetime = ipsec.Lifetime{Time: time.Hour}
		ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
		p := newPair(t, clk, ca, cb)
		p.up(t, "t1")
		p.advance(t, 55*time.Minute)
		st := p.a.d.Status().Tunnels[0]
		if c.want == 0 {
			// Each refusal puts the next try off (ike.Backoff) until
			// the child SA expires.
			refused := p.b.d.Status().Counters.NoProposalChosen
			if st.Rekeys != 0 || refused < 1 || len(st.Negotiations) != 1 || !st.Negotiations[0].Rekey ||
				st.Negotiations[0].Failures != int(refused) || st.Negotiations[0].State != "backing off" {
				t.Errorf("PFS %d against %d: rekeyed %d times, %d refused, negotiations %+v", c.a, c.b, st.Rekeys, refused, st.Negotiations)
			}
			// For one reason, refused again and again: reported once.
			if n := countEvents(p.a.lis, "failed", "t1"); refused > 1 && n != 1 {
				t.Errorf("PFS %d against %d: %d refusals reported %d times, want once", c.a, c.b, refused, n)
			}
			continue
		}
		if st.Rekeys != 1 || st.PFSGroup != c.want {
			t.Errorf("PFS %d against %d: %d rekeys, group %d", c.a, c.b, st.Rekeys, st.PFSGroup)
		}
	}
}

// TestPairRekeyByTime: the child SA is rekeyed at 80–90 % of its lifetime
// on the fake clock: the new pair is in before the old one goes, and the
// tunnel never goes down.
func TestPairRekeyByTime(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha256")
	ta.Lifetime, ta.PFSGroup = ipsec.Lifetime{Time: time.Hour}, 14
	tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha256")
	tb.PFSGroup = 14
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	checkMakeBeforeBreak(t, p, func() { p.advance(t, 55*time.Minute) })
}

// checkMakeBeforeBreak runs trigger and checks, on both installers, that
// a new SA pair came in before the old one left, and that the keys match.
func checkMakeBeforeBreak(t *testing.T, p *pair, trigger func()) {
	t.Helper()
	before := len(p.a.inst.Calls())
	trigger()
	for _, s := range []*side{p.a, p.b} {
		waitFor(t, "old SAs deleted", func() bool {
			n := 0
			for _, c := range s.inst.Calls() {
				if c.Op == "delete" {
					n++
				}
			}
			return n >= 2
		})
		calls := s.inst.Calls()
		if calls[2].Op != "add" || calls[3].Op != "add" || calls[4].Op != "delete" || calls[5].Op != "delete" {
			t.Fatalf("installer calls %v, want the new pair added before the old one is deleted", calls)
		}
		if calls[2].SA.Inbound != true {
			t.Errorf("the new inbound SA must come first: %v", calls)
		}
	}
	if before != 2 {
		t.Fatalf("%d installer calls before the rekey", before)
	}
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
	if countEvents(p.a.lis, "down", "t1")+countEvents(p.b.lis, "down", "t1") != 0 {
		t.Fatal("the tunnel went down")
	}
	// The child that answered the rekey lets the one it replaced go, or
	// each rekey would keep every child before it.
	waitFor(t, "both ends idle", func() bool { return p.a.idle() && p.b.idle() })
	for _, s := range []*side{p.a, p.b} {
		s.d.mu.Lock()
		for _, c := range s.d.tunnels["t1"].children {
			if c.rk != nil {
				t.Errorf("child %v still holds a rekey record %+v", c.in, *c.rk)
			}
		}
		s.d.mu.Unlock()
	}
	if st := p.a.d.Status(); st.Tunnels[0].Rekeys != 1 || st.Counters.Rekeys != 1 {
		t.Fatalf("rekeys %d/%d", st.Tunnels[0].Rekeys, st.Counters.Rekeys)
	}
}

// TestPairRekeyByVolume: the data path's soft volume expiry rekeys.
func TestPairRekeyByVolume(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")
	ta.Lifetime = ipsec.Lifetime{Bytes: 1 << 30}
	ca.Tunnels = []ike.Tunnel{ta}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	_, out, _ := p.a.inst.Tunnel("t1")
	if out[0].Soft.Bytes == 0 || out[0].Soft.Bytes >= out[0].Hard.Bytes {
		t.Fatalf("volume limits %+v %+v", out[0].Soft, out[0].Hard)
	}
	id := p.a.inst.Calls()[1].ID
	checkMakeBeforeBreak(t, p, func() { p.a.d.Expire(id, false) })
}

// TestPairRekeyResponderHoldsOutbound: the end that answers a child SA
// rekey installs the new inbound SA at once but keeps sending on the old
// outbound SA until the peer deletes the old child (the peer installs its
// new inbound SA only once it has the answer, so a packet sent on the new
// SA sooner could find no SA there), or until outboundWait has passed
// when no Delete comes: here A's Delete is dropped on the wire.
func TestPairRekeyResponderHoldsOutbound(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")
	ta.Lifetime = ipsec.Lifetime{Time: time.Hour}
	ca.Tunnels = []ike.Tunnel{ta}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	before := len(p.b.inst.Calls())
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		if m, err := ParseMessage(msg); err == nil && m.Exchange == Informational && !m.IsResponse() && local.Addr() == addrA {
			return nil // A's Delete of the old child
		}
		return msg
	})
	p.advance(t, 47*time.Minute) // A rekeys at 48 to 54 minutes
	for i := 0; len(p.b.inst.Calls()) == before; i++ {
		if i > 8*60 {
			t.Fatal("A did not rekey")
		}
		p.advance(t, time.Second)
	}
	calls := p.b.inst.Calls()[before:]
	if len(calls) != 1 || calls[0].Op != "add" || !calls[0].SA.Inbound {
		t.Fatalf("B's installer calls after A's rekey, before A's Delete: %v; want the new inbound SA only", calls)
	}
	p.advance(t, outboundWait)
	calls = p.b.inst.Calls()[before:]
	if len(calls) != 2 || calls[1].Op != "add" || calls[1].SA.Inbound {
		t.Fatalf("B's installer calls %v after %v without A's Delete; want the new outbound SA added", calls, outboundWait)
	}
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
}

// TestPairRekeyedInboundGrace: once the peer has deleted the child its
// rekey replaced, the old outbound SA goes at once and the old inbound SA
// rekeyedInboundGrace later, for the packets the peer sealed before it
// switched.
func TestPairRekeyedInboundGrace(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")
	ta.Lifetime = ipsec.Lifetime{Time: time.Hour}
	ca.Tunnels = []ike.Tunnel{ta}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.b.d.inboundGrace = rekeyedInboundGrace
	p.up(t, "t1")
	before := len(p.b.inst.Calls())
	deletes := func() []iketest.Call {
		var ds []iketest.Call
		for _, c := range p.b.inst.Calls()[before:] {
			if c.Op == "delete" {
				ds = append(ds, c)
			}
		}
		return ds
	}
	p.advance(t, 47*time.Minute) // A rekeys at 48 to 54 minutes
	for i := 0; len(deletes()) == 0; i++ {
		if i > 8*60 {
			t.Fatal("A did not rekey")
		}
		p.advance(t, time.Second)
	}
	if ds := deletes(); len(ds) != 1 || ds[0].ID.Dst != addrA {
		t.Fatalf("B's deletes right after A's Delete: %v; want the old outbound SA only", ds)
	}
	p.advance(t, rekeyedInboundGrace)
	if ds := deletes(); len(ds) != 2 || ds[1].ID.Dst != addrB {
		t.Fatalf("B's deletes %v after the grace; want the old inbound SA too", ds)
	}
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
}
