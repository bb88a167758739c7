package v2

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
)

// TestPairIdentities: FQDN identities, and a user@fqdn peer whose key is
// found under its FQDN only (the seed's strip-and-retry), both ways.
func TestPairIdentities(t *testing.T) {
	for _, user := range []bool{false, true} {
		clk := clocktest.New(t0)
		ca, cb := pairConfig(clk), pairConfig(clk)
		ca.PreSharedKeys = []ike.PreSharedKey{{Peer: "b.example.net", Key: ipsec.Key("fqdn-secret")}}
		cb.PreSharedKeys = []ike.PreSharedKey{{Peer: "a.example.net", Key: ipsec.Key("fqdn-secret")}}
		ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes256-gcm16")
		tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes256-gcm16")
		ta.LocalID, tb.RemoteID = ike.Identity{Kind: ike.IDFQDN, Name: "a.example.net"}, ike.Identity{Kind: ike.IDFQDN, Name: "a.example.net"}
		ta.RemoteID, tb.LocalID = ike.Identity{Kind: ike.IDFQDN, Name: "b.example.net"}, ike.Identity{Kind: ike.IDFQDN, Name: "b.example.net"}
		if user {
			ta.RemoteID = ike.Identity{Kind: ike.IDUserFQDN, Name: "vpn@b.example.net"}
			tb.LocalID = ta.RemoteID
		}
		ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
		p := newPair(t, clk, ca, cb)
		p.up(t, "t1")
		checkKeysMatch(t, p.a, p.b, "t1", "t1")
		if id := p.a.d.Status().IKESAs[0].RemoteID; id != ta.RemoteID.String() {
			t.Fatalf("peer identity %q", id)
		}
	}
}

// TestPairWrongKey: a peer with another key gets AUTHENTICATION_FAILED;
// both sides count it and the tunnel fails.
func TestPairWrongKey(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	cb.PreSharedKeys = []ike.PreSharedKey{{Peer: addrA.String(), Key: ipsec.Key("other-secret")}}
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	p := newPair(t, clk, ca, cb)
	p.a.d.Acquire("t1")
	e := waitEvent(t, p.a.lis, "failed", "t1")
	if !strings.Contains(e.Reason, "AUTHENTICATION_FAILED") {
		t.Fatalf("reason %q", e.Reason)
	}
	if p.a.d.Status().Counters.AuthFailed != 1 || p.b.d.Status().Counters.AuthFailed != 1 {
		t.Fatalf("AuthFailed: %d %d", p.a.d.Status().Counters.AuthFailed, p.b.d.Status().Counters.AuthFailed)
	}
	if len(p.a.inst.SAs()) != 0 || len(p.b.inst.SAs()) != 0 {
		t.Fatal("SAs installed")
	}
}

// TestPairProposals: the responder takes the first of its own entries
// the initiator offers; nothing in common is NO_PROPOSAL_CHOSEN, for the
// IKE SA and for the child SA (which leaves the IKE SA up).
func TestPairProposals(t *testing.T) {
	t.Run("order", func(t *testing.T) {
		clk := clocktest.New(t0)
		ca := pairConfig(clk, ike.Policy{Encryption: ike.EncAES256GCM, PRF: ike.HashSHA384, Auth: ike.AuthPSK, Group: 20},
			ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA1, Auth: ike.AuthPSK, Group: 19})
		cb := pairConfig(clk, ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA1, Auth: ike.AuthPSK, Group: 19},
			ike.Policy{Encryption: ike.EncAES256GCM, PRF: ike.HashSHA384, Auth: ike.AuthPSK, Group: 20})
		ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16", "esp-3des-hmac-md5")}
		cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-3des-hmac-md5", "esp-aes128-gcm16")}
		p := newPair(t, clk, ca, cb)
		p.up(t, "t1")
		checkKeysMatch(t, p.a, p.b, "t1", "t1")
		st := p.a.d.Status()
		if pol := st.IKESAs[0].Policy; pol.Encryption != ike.EncAES128 || pol.Group != 19 {
			t.Errorf("IKE SA policy %v, want the responder's first", pol)
		}
		if st.Tunnels[0].Transform.Name() != "esp-3des-hmac-md5" {
			t.Errorf("child transform %v, want the responder's first", st.Tunnels[0].Transform)
		}
		// The initiator's first KE was group 20; the responder chose 19.
		if st.Counters.InvalidKE != 1 || p.b.d.Status().Counters.InvalidKE != 1 {
			t.Errorf("INVALID_KE_PAYLOAD counts %d %d", st.Counters.InvalidKE, p.b.d.Status().Counters.InvalidKE)
		}
	})
	t.Run("ike-none", func(t *testing.T) {
		clk := clocktest.New(t0)
		ca := pairConfig(clk, ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA1, Auth: ike.AuthPSK, Group: 14})
		cb := pairConfig(clk, ike.Policy{Encryption: ike.EncAES256, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14})
		ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
		p := newPair(t, clk, ca, cb)
		p.a.d.Acquire("t1")
		if e := waitEvent(t, p.a.lis, "failed", "t1"); !strings.Contains(e.Reason, "NO_PROPOSAL_CHOSEN") {
			t.Fatalf("reason %q", e.Reason)
		}
		if n := p.b.d.Status().Counters.NoProposalChosen; n != 1 || len(p.b.d.Status().IKESAs) != 0 {
			t.Fatalf("responder: %d refusals, %d IKE SAs (it must keep no state)", n, len(p.b.d.Status().IKESAs))
		}
	})
	t.Run("child-none", func(t *testing.T) {
		clk := clocktest.New(t0)
		ca, cb := pairConfig(clk), pairConfig(clk)
		ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
		cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes256-hmac-sha256")}
		p := newPair(t, clk, ca, cb)
		p.a.d.Acquire("t1")
		if e := waitEvent(t, p.a.lis, "failed", "t1"); !strings.Contains(e.Reason, "NO_PROPOSAL_CHOSEN") {
			t.Fatalf("reason %q", e.Reason)
		}
		if st := p.a.d.Status(); len(st.IKESAs) != 1 || !st.IKESAs[0].Established {
			t.Fatalf("the IKE SA must stay up: %+v", st.IKESAs)
		}
	})
}

// TestPairInvalidKE: a responder whose only policy has group 19 answers
// an initiator whose first KE is of group 14 with INVALID_KE_PAYLOAD
// naming 19 (§1.2); the initiator retries with it.
func TestPairInvalidKE(t *testing.T) {
	clk := clocktest.New(t0)
	ca := pairConfig(clk, ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14},
		ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 19})
	cb := pairConfig(clk, ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 19})
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	if a, b := p.a.d.Status().Counters.InvalidKE, p.b.d.Status().Counters.InvalidKE; a != 1 || b != 1 {
		t.Fatalf("INVALID_KE_PAYLOAD: initiator retried %d times, responder sent %d", a, b)
	}
	if g := p.a.d.Status().IKESAs[0].Policy.Group; g != 19 {
		t.Fatalf("group %d", g)
	}
}

// TestPairTrafficSelectors: the responder narrows to its selectors
// (§2.9); selectors that do not meet are TS_UNACCEPTABLE.
func TestPairTrafficSelectors(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	wide := netip.MustParsePrefix("203.0.0.0/16")
	rng, _ := selector.FromRange(netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.50"))
	ta := pairTunnel(t, "t1", addrA, addrB, netA, wide, "esp-aes128-gcm16")
	tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")
	tb.RemoteSelector = rng
	ta2 := pairTunnel(t, "t2", addrA, addrB, netip.MustParsePrefix("192.0.2.128/25"), netB, "esp-aes128-gcm16")
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta, ta2}, []ike.Tunnel{tb}
	p := newPair(t, clk, ca, cb)
	p.a.d.Acquire("t1")
	waitEvent(t, p.a.lis, "up", "t1")
	in, _, _ := p.a.inst.Tunnel("t1")
	if !in[0].Local.Is(rng) || !in[0].Remote.Is(selector.FromPrefix(netB)) {
		t.Fatalf("narrowed selectors %v %v, want %v %v", in[0].Local, in[0].Remote, rng, netB)
	}
	p.a.d.Acquire("t2")
	if e := waitEvent(t, p.a.lis, "failed", "t2"); !strings.Contains(e.Reason, "TS_UNACCEPTABLE") {
		t.Fatalf("reason %q", e.Reason)
	}
}

// TestPairSecondTunnel: a second tunnel between the same endpoints gets
// its child SA on the same IKE SA with CREATE_CHILD_SA.
func TestPairSecondTunnel(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	net2A, net2B := netip.MustParsePrefix("198.51.100.128/25"), netip.MustParsePrefix("203.0.113.128/25")
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16"),
		pairTunnel(t, "t2", addrA, addrB, net2A, net2B, "esp-aes256-hmac-sha512")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t2", addrB, addrA, net2B, net2A, "esp-aes256-hmac-sha512"),
		pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.a.d.Acquire("t1")
	p.a.d.Acquire("t2") // while the IKE SA is being made: it waits for it
	waitEvent(t, p.b.lis, "up", "t1")
	waitEvent(t, p.b.lis, "up", "t2")
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
	checkKeysMatch(t, p.a, p.b, "t2", "t2")
	if n := len(p.a.d.Status().IKESAs); n != 1 {
		t.Fatalf("%d IKE SAs", n)
	}
	if in, _, _ := p.b.inst.Tunnel("t2"); !in[0].Local.Is(selector.FromPrefix(net2B)) {
		t.Fatalf("t2's SA has selectors %v", in[0].Local)
	}
}

// TestPairDelete: a deleted child SA goes on both sides; a deleted IKE SA
// takes its children with it.
func TestPairDelete(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	p.a.d.Expire(p.a.inst.Calls()[0].ID, true)
	waitEvent(t, p.b.lis, "down", "t1")
	waitFor(t, "no SAs", func() bool { return len(p.a.inst.SAs()) == 0 && len(p.b.inst.SAs()) == 0 })
	if st := p.b.d.Status(); len(st.IKESAs) != 1 || st.Counters.DeletesReceived != 1 {
		t.Fatalf("B: %+v", st)
	}
	p.b.d.Acquire("t1")
	waitFor(t, "up again", func() bool { return countEvents(p.a.lis, "up", "t1") == 2 })
	p.a.d.Close()
	waitFor(t, "B's SAs gone", func() bool { return len(p.b.inst.SAs()) == 0 && len(p.b.d.Status().IKESAs) == 0 })
}

// TestPairDPD: with DPD on, a silent peer gets liveness checks at the
// seed's Idle time; an answer keeps it alive; when the wire goes dead the
// checks go unanswered and the peer is declared dead: PeerDead, then the
// tunnel goes down and every SA is deleted.
func TestPairDPD(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")
	ta.DPD = &ipsec.DPD{Enabled: true, Sent: 10 * time.Second, Silent: 20 * time.Second, Idle: 30 * time.Second,
		RetryInterval: 2 * time.Second, Retries: 3}
	ca.Tunnels = []ike.Tunnel{ta}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	step := func(d time.Duration) { p.advance(t, d) }
	step(35 * time.Second)
	waitFor(t, "a liveness check answered", func() bool { return p.a.d.Status().Counters.DPDAcks >= 1 })
	if p.b.d.Status().Counters.DPDAnswered == 0 {
		t.Fatal("B answered no liveness check")
	}
	var dead atomic.Bool
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		if dead.Load() {
			return nil
		}
		return msg
	})
	dead.Store(true)
	step(45 * time.Second)
	e := waitEvent(t, p.a.lis, "dead", "t1")
	if e.Peer.Addr() != addrB {
		t.Fatalf("dead peer %v", e.Peer)
	}
	waitEvent(t, p.a.lis, "down", "t1")
	waitFor(t, "A's SAs gone", func() bool { return len(p.a.inst.SAs()) == 0 })
	if st := p.a.d.Status(); st.Counters.DPDPeersDead != 1 || len(st.IKESAs) != 0 {
		t.Fatalf("A: %+v", st.Counters)
	}
}

// TestPairRetransmission: a lost response makes the initiator resend the
// same request; the responder answers it from its cache without doing the
// exchange twice (one child SA, Duplicates counted).
func TestPairRetransmission(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	var dropped atomic.Int32
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		// Drop B's first IKE_AUTH response.
		if remote.Addr() == addrA && len(msg) > 18 && ExchangeType(msg[18]) == IKEAuth && dropped.Add(1) == 1 {
			return nil
		}
		return msg
	})
	p.a.d.Acquire("t1")
	waitEvent(t, p.b.lis, "up", "t1")
	if !clk.WaitPending(1, time.Second) {
		t.Fatal("no retransmission timer")
	}
	clk.Advance(time.Second) // the retransmission
	waitEvent(t, p.a.lis, "up", "t1")
	if st := p.b.d.Status(); st.Counters.Duplicates != 1 || st.Counters.QuickModesCompleted != 1 {
		t.Fatalf("B: %d duplicates, %d children", st.Counters.Duplicates, st.Counters.QuickModesCompleted)
	}
	if n := p.a.d.Status().Counters.Retransmits; n != 1 {
		t.Fatalf("A retransmitted %d times", n)
	}
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
}

// TestPairRetransmitLimit: an initiator whose peer never answers gives up
// after Tries resends, with backoff, on the fake clock.
func TestPairRetransmitLimit(t *testing.T) {
	clk := clocktest.New(t0)
	ca := pairConfig(clk)
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	w := iketest.NewWire()
	t.Cleanup(w.Close)
	var sent atomic.Int32
	w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte { sent.Add(1); return nil })
	ca.Clock = clk
	lis := iketest.NewListener()
	d, err := New(ca, iketest.NewInstaller(1), w, lis)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Acquire("t1")
	clk.Advance(1*time.Second + 2*time.Second + 4*time.Second - time.Millisecond)
	if n := sent.Load(); n != 3 {
		t.Fatalf("%d sent before the last resend", n)
	}
	clk.Advance(time.Millisecond + 8*time.Second)
	waitEvent(t, lis, "failed", "t1")
	if n := sent.Load(); n != 4 || d.Status().Counters.Retransmits != 3 {
		t.Fatalf("%d sent, %d retransmits", n, d.Status().Counters.Retransmits)
	}
}

// TestPairOutOfWindow: a request with a message ID ahead of the window is
// counted and ignored (§2.3); the SA goes on.
func TestPairOutOfWindow(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	// A sends a liveness check with message ID 7 instead of 2.
	p.a.d.mu.Lock()
	var sa *ikeSA
	for _, s := range p.a.d.sas {
		sa = s
	}
	p.a.d.mu.Unlock()
	sa.lock()
	out := sa.sealer()
	b, err := out.seal(sa.header(Informational, 7, false), nil, p.a.d.rand)
	local, remote := sa.local, sa.remote
	sa.unlock()
	if err != nil {
		t.Fatal(err)
	}
	p.w.Send(local, remote, b)
	waitFor(t, "the message counted", func() bool { return p.b.d.Status().Counters.OutOfWindow == 1 })
	if p.b.d.Status().Counters.DPDAnswered != 0 {
		t.Fatal("B answered an out-of-window request")
	}
	p.a.d.Expire(p.a.inst.Calls()[0].ID, true) // message ID 2 still works
	waitEvent(t, p.b.lis, "down", "t1")
}

// TestPairTransportESN: transport mode (USE_TRANSPORT_MODE) and ESN.
func TestPairTransportESN(t *testing.T) {
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "ah-hmac-sha256", "esp-aes128-gcm16")
	tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "ah-hmac-sha256")
	ta.SAMode, tb.SAMode = ipsec.Transport, ipsec.Transport
	ta.ESN, tb.ESN = true, true
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
	in, _, _ := p.a.inst.Tunnel("t1")
	if in[0].Mode != ipsec.Transport || !in[0].ESN || in[0].Transform.Name() != "ah-hmac-sha256" {
		t.Fatalf("SA %+v", in[0])
	}
}
