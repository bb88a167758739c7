package v1

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
)

// DPD and failover between ISM daemons in memory; the strongSwan cases
// are in dpd_interop_test.go. Timers are short through the configuration,
// never by changing the defaults.

var addrC = netip.MustParseAddr("192.0.2.3")

// idleDPD returns DPD settings with only the idle rule short.
func idleDPD(idle time.Duration) *ipsec.DPD {
	return &ipsec.DPD{Enabled: true, Sent: time.Minute, Silent: time.Minute, Idle: idle,
		RetryInterval: 500 * time.Millisecond, Retries: 2}
}

// passiveDPD is DPD on, so that it is announced, with timers that never
// fire in a test.
var passiveDPD = ipsec.DPD{Enabled: true, Sent: time.Hour, Silent: time.Hour, Idle: time.Hour}

// newSide starts a daemon on the sim at addr.
func newSide(t *testing.T, w *sim, c ike.Config, addr netip.Addr, base uint32) *pairSide {
	t.Helper()
	s := &pairSide{inst: iketest.NewInstaller(base), lis: iketest.NewListener()}
	d, err := New(w.config(c), s.inst, w, s.lis)
	if err != nil {
		t.Fatal(err)
	}
	s.d = d
	w.Attach(addr, d)
	t.Cleanup(func() { d.Close() })
	return s
}

// waitFor waits for an event f accepts and returns it.
func waitFor(t *testing.T, l *iketest.Listener, within time.Duration, what string, f func(iketest.Event) bool) iketest.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, e := range l.Events() {
			if f(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; events: %v", what, within, l.Events())
		}
		select {
		case <-l.C():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// blocker drops the wire's datagrams from and to blocked addresses: a
// peer that is gone, or a link that is down.
type blocker struct {
	mu      sync.Mutex
	blocked map[netip.Addr]bool
}

func newBlocker(w *sim) *blocker {
	b := &blocker{blocked: map[netip.Addr]bool{}}
	w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.blocked[local.Addr()] || b.blocked[remote.Addr()] {
			return nil
		}
		return msg
	})
	return b
}

func (b *blocker) set(a netip.Addr, blocked bool) {
	b.mu.Lock()
	b.blocked[a] = blocked
	b.mu.Unlock()
}

// vendorIDsOf returns the vendor IDs of a plaintext message.
func vendorIDsOf(msg []byte) [][]byte {
	m, err := ParseMessage(msg)
	if err != nil {
		return nil
	}
	var out [][]byte
	for _, v := range m.All(PayloadVendorID) {
		out = append(out, v.Body)
	}
	return out
}

func tunnelStatus(t *testing.T, d *Daemon, name string) ike.TunnelStatus {
	t.Helper()
	for _, st := range d.Status().Tunnels {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no tunnel %s", name)
	return ike.TunnelStatus{}
}

// TestPairDPDBothSides: two ISMs with DPD on announce it to each other
// and each one's idle inquiries are answered by the other; nobody is
// declared dead. Which side probes is set by reconfiguring the idle
// timers, since any authenticated message from the peer, an inquiry
// included, restarts the other side's idle timer.
func TestPairDPDBothSides(t *testing.T) {
	t.Parallel()
	ca, cb := baseConfig(), baseConfig()
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")
	tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")
	ta.DPD, tb.DPD = idleDPD(400*time.Millisecond), idleDPD(time.Hour)
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
	a, b, w := newPair(t, ca, cb)
	a.d.Acquire("t1")
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	for _, s := range []*pairSide{a, b} {
		sas := s.d.Status().IKESAs
		if len(sas) != 1 || !sas[0].DPD || !sas[0].PeerDPD {
			t.Fatalf("IKE SAs %+v: want DPD announced both ways", sas)
		}
	}
	// A probes, B answers.
	w.waitUntil(t, 10*time.Second, "A's inquiries answered", func() bool {
		return a.d.Status().Counters.DPDAcks >= 2 && b.d.Status().Counters.DPDAnswered >= 2
	})
	// Now B probes, A answers.
	ta.DPD, tb.DPD = idleDPD(time.Hour), idleDPD(400*time.Millisecond)
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
	if err := a.d.Reconfigure(ca); err != nil {
		t.Fatal(err)
	}
	if err := b.d.Reconfigure(cb); err != nil {
		t.Fatal(err)
	}
	answered := a.d.Status().Counters.DPDAnswered
	w.waitUntil(t, 10*time.Second, "B's inquiries answered", func() bool {
		return b.d.Status().Counters.DPDAcks >= 2 && a.d.Status().Counters.DPDAnswered >= answered+2
	})
	st := tunnelStatus(t, b.d, "t1")
	if !st.DPD.Enabled || !st.DPD.PeerSupports || st.DPD.LastSequence == 0 || st.DPD.LastReceived.IsZero() || !st.DPD.DeadAt.IsZero() {
		t.Errorf("B's DPD status %+v", st.DPD)
	}
	for _, s := range []*pairSide{a, b} {
		if c := s.d.Status().Counters; c.DPDPeersDead != 0 {
			t.Errorf("a peer was declared dead: %+v", c)
		}
		for _, e := range s.lis.Events() {
			if e.Kind != "up" {
				t.Errorf("event %v", e)
			}
		}
	}
}

// TestPairDPDNotAnnounced: an ISM whose tunnels to a peer all have DPD
// off does not announce DPD, in either role, and the peer, which has DPD
// on, sends it no inquiry however long the tunnel stays idle.
func TestPairDPDNotAnnounced(t *testing.T) {
	t.Parallel()
	for _, aInitiates := range []bool{true, false} {
		t.Run(fmt.Sprintf("AInitiates=%v", aInitiates), func(t *testing.T) {
			t.Parallel()
			ca, cb := baseConfig(), baseConfig()
			ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")
			ta.DPD = idleDPD(200 * time.Millisecond)
			ca.Tunnels = []ike.Tunnel{ta}
			cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
			cb.DPD = ipsec.DPD{Enabled: false, Idle: 100 * time.Millisecond} // off, whatever the timers
			a, b, w := newPair(t, ca, cb)
			var mu sync.Mutex
			vids := map[netip.Addr][][]byte{}
			w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
				if h := Header(msg); h.IsValid() && h.Flags()&FlagEncryption == 0 {
					mu.Lock()
					vids[local.Addr()] = append(vids[local.Addr()], vendorIDsOf(msg)...)
					mu.Unlock()
				}
				return msg
			})
			if aInitiates {
				a.d.Acquire("t1")
			} else {
				b.d.Acquire("t1")
			}
			w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
			w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
			w.sleep(t, time.Second) // five idle periods of A's
			mu.Lock()
			defer mu.Unlock()
			has := func(a netip.Addr) bool {
				for _, v := range vids[a] {
					if string(v) == string(dpdVendorID) {
						return true
					}
				}
				return false
			}
			if !has(addrA) {
				t.Error("A, with DPD on, did not announce it")
			}
			if has(addrB) {
				t.Error("B, with DPD off, announced it")
			}
			if len(vids[addrB]) == 0 {
				t.Fatal("saw no vendor ID from B at all")
			}
			if c := a.d.Status().Counters; c.DPDInquiries != 0 {
				t.Errorf("A sent %d inquiries to a peer that did not announce DPD", c.DPDInquiries)
			}
			sa := a.d.Status().IKESAs[0]
			if !sa.DPD || sa.PeerDPD {
				t.Errorf("A's IKE SA %+v: want DPD announced, not the peer's", sa)
			}
			if st := tunnelStatus(t, a.d, "t1"); st.State != "up" || !st.DPD.Enabled || st.DPD.PeerSupports {
				t.Errorf("A's tunnel %+v", st)
			}
		})
	}
}

// TestPairDPDAnswersWithoutAnnouncing: an ISM that did not announce DPD
// still answers an R-U-THERE (as strongSwan does), echoing its sequence
// number; the answer to an inquiry nobody made is dropped.
func TestPairDPDAnswersWithoutAnnouncing(t *testing.T) {
	t.Parallel()
	ca, cb := baseConfig(), baseConfig()
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	a, b, w := newPair(t, ca, cb)
	a.d.Acquire("t1")
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	if sa := a.d.Status().IKESAs[0]; sa.DPD || sa.PeerDPD {
		t.Fatalf("DPD announced without a tunnel wanting it: %+v", sa)
	}
	a.d.mu.Lock()
	var sa *ikeSA
	for _, s := range a.d.sas {
		sa = s
	}
	a.d.mu.Unlock()
	a.d.sendDPD(sa, NotifyDPDRUThere, 0x1234)
	w.waitUntil(t, 5*time.Second, "B answered", func() bool { return b.d.Status().Counters.DPDAnswered == 1 })
	// A asked nothing as far as its DPD state goes: the ACK is dropped.
	w.waitUntil(t, 5*time.Second, "A dropped the unsolicited ACK", func() bool { return a.d.Status().Counters.Dropped >= 1 })
	if c := a.d.Status().Counters; c.DPDAcks != 0 {
		t.Errorf("an ACK to no inquiry was taken: %+v", c)
	}
}

// TestPairDPDTrafficRule: with traffic sent but none received, inquiries
// go out after the silent time and the answers keep the peer alive; while
// traffic arrives no inquiry is sent; when the peer stops answering it is
// declared dead after the retries, and every SA between the two
// endpoints goes, the tunnel without DPD included.
func TestPairDPDTrafficRule(t *testing.T) {
	t.Parallel()
	ca, cb := baseConfig(), baseConfig()
	t1 := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")
	t1.DPD = &ipsec.DPD{Enabled: true, Sent: 2 * time.Second, Silent: 400 * time.Millisecond, Idle: time.Hour,
		RetryInterval: 500 * time.Millisecond, Retries: 2}
	t2 := pairTunnel(t, "t2", addrA, addrB, netip.MustParsePrefix("198.51.100.0/25"), netip.MustParsePrefix("203.0.113.0/25"), "esp-aes128-hmac-sha")
	ca.Tunnels = []ike.Tunnel{t1, t2}
	cb.DPD = passiveDPD
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha"),
		pairTunnel(t, "t2", addrB, addrA, netip.MustParsePrefix("203.0.113.0/25"), netip.MustParsePrefix("198.51.100.0/25"), "esp-aes128-hmac-sha")}
	a, b, w := newPair(t, ca, cb)
	blk := newBlocker(w)
	var mu sync.Mutex
	receiving := true
	start := w.clk.Now()
	a.inst.SetUsageFunc(func(_ ipsec.SAID, sa ike.UserSA) ike.SAUsage {
		mu.Lock()
		defer mu.Unlock()
		if !sa.Inbound || receiving {
			return ike.SAUsage{Packets: 1, LastUsed: w.clk.Now()}
		}
		return ike.SAUsage{Packets: 1, LastUsed: start}
	})
	a.d.Acquire("t1")
	a.d.Acquire("t2")
	for _, n := range []string{"t1", "t2"} {
		w.waitEvent(t, a.lis, "up", n, 10*time.Second)
		w.waitEvent(t, b.lis, "up", n, 10*time.Second)
	}
	w.sleep(t, time.Second) // more than twice the silent time, with traffic both ways
	if c := a.d.Status().Counters; c.DPDInquiries != 0 {
		t.Fatalf("%d inquiries while traffic arrived", c.DPDInquiries)
	}
	mu.Lock()
	receiving = false // the data path now only sends
	mu.Unlock()
	w.waitUntil(t, 10*time.Second, "inquiries answered", func() bool { return a.d.Status().Counters.DPDAcks >= 2 })
	if st := tunnelStatus(t, a.d, "t1"); st.DPD.LastSent.Before(start) || st.DPD.LastSequence == 0 {
		t.Errorf("DPD status %+v", st.DPD)
	}
	a.d.mu.Lock()
	var keys [][]byte
	for _, sa := range a.d.sas {
		keys = append(keys, sa.skeyidD(), sa.skeyidA())
	}
	a.d.mu.Unlock()
	blk.set(addrB, true) // B is gone
	dead := w.waitFor(t, a.lis, 10*time.Second, "dead event", func(e iketest.Event) bool { return e.Kind == "dead" && e.Tunnel == "t1" })
	if dead.Peer.Addr() != addrB {
		t.Errorf("dead peer %v", dead.Peer)
	}
	down := w.waitFor(t, a.lis, 5*time.Second, "t1 down", func(e iketest.Event) bool { return e.Kind == "down" && e.Tunnel == "t1" })
	if want := "dpd: peer 192.0.2.2 dead after 3 unanswered R-U-THERE"; down.Reason != want {
		t.Errorf("down reason %q, want %q", down.Reason, want)
	}
	w.waitFor(t, a.lis, 5*time.Second, "t2 down", func(e iketest.Event) bool { return e.Kind == "down" && e.Tunnel == "t2" })
	if n := len(a.inst.SAs()); n != 0 {
		t.Errorf("%d SAs left", n)
	}
	for _, k := range keys {
		if len(k) == 0 || !bytes.Equal(k, make([]byte, len(k))) {
			t.Error("a phase 1 key of the dead peer's IKE SA is not zeroed")
		}
	}
	deletes := 0
	for _, c := range a.inst.Calls() {
		if c.Op == "delete" {
			deletes++
		}
	}
	if deletes != 4 {
		t.Errorf("%d deletes, want 4 (two tunnels, two directions)", deletes)
	}
	st := a.d.Status()
	if len(st.IKESAs) != 0 || st.Counters.DPDPeersDead != 1 || st.Counters.DPDInquiries < 3 {
		t.Errorf("status after death: IKE SAs %+v counters %+v", st.IKESAs, st.Counters)
	}
	ts := tunnelStatus(t, a.d, "t1")
	if ts.State != "down" || ts.DPD.DeadPeer != addrB || ts.DPD.DeadAt.IsZero() || !strings.Contains(ts.LastError, "dead") {
		t.Errorf("tunnel status %+v", ts)
	}
}

// TestPairFailoverSetupFailure: phase 1 with the destination fails (it
// has another pre-shared key); the tunnel switches to its backup and
// comes up there, and Status shows the switch and its duration.
func TestPairFailoverSetupFailure(t *testing.T) {
	t.Parallel()
	ca, cb, cc := baseConfig(), baseConfig(), baseConfig()
	ca.PreSharedKeys = append(ca.PreSharedKeys, ike.PreSharedKey{Peer: addrC.String(), Key: ipsec.Key("pair-secret")})
	cb.PreSharedKeys = []ike.PreSharedKey{{Peer: addrA.String(), Key: ipsec.Key("another-secret")}}
	cc.PreSharedKeys = []ike.PreSharedKey{{Peer: addrA.String(), Key: ipsec.Key("pair-secret")}}
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")
	ta.BackupDestination = addrC
	ca.Tunnels = []ike.Tunnel{ta}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	cc.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrC, addrA, netB, netA, "esp-aes128-hmac-sha")}
	w := newSim(t)
	a := newSide(t, w, ca, addrA, 0x1000)
	newSide(t, w, cb, addrB, 0x2000)
	c := newSide(t, w, cc, addrC, 0x3000)
	a.d.Acquire("t1")
	fo := w.waitFor(t, a.lis, 20*time.Second, "failover", func(e iketest.Event) bool { return e.Kind == "failover" })
	if fo.From != addrB || fo.To != addrC || !strings.Contains(fo.Reason, "phase 1") {
		t.Errorf("failover %v", fo)
	}
	up := w.waitFor(t, a.lis, 10*time.Second, "up with the backup", func(e iketest.Event) bool { return e.Kind == "up" })
	if up.Peer.Addr() != addrC {
		t.Errorf("up with %v, want the backup %v", up.Peer, addrC)
	}
	w.waitEvent(t, c.lis, "up", "t1", 10*time.Second)
	checkKeysMatch(t, a, c, "t1", "t1")
	st := tunnelStatus(t, a.d, "t1")
	f := st.Failover
	if st.Destination != addrC || !f.OnBackup || f.Count != 1 || f.LastFrom != addrB || f.LastTo != addrC ||
		f.InProgress || f.LastDuration <= 0 || f.Backup != addrC {
		t.Errorf("status %+v", st)
	}
	t.Logf("failover after a failed phase 1: %v from the last packet of the old destination to SAs with the new one", f.LastDuration)
	if n := a.d.Status().Counters.Failovers; n != 1 {
		t.Errorf("%d failovers counted", n)
	}
}

// TestPairFailoverHoldDown: DPD declares the destination dead and the
// tunnel moves to the backup; the backup dies too, within the hold-down:
// the tunnel goes back to the original destination (two-way), but not
// before the hold-down has passed.
func TestPairFailoverHoldDown(t *testing.T) {
	t.Parallel()
	const hold = 5 * time.Second
	ca, cb, cc := baseConfig(), baseConfig(), baseConfig()
	ca.PreSharedKeys = append(ca.PreSharedKeys, ike.PreSharedKey{Peer: addrC.String(), Key: ipsec.Key("pair-secret")})
	cc.PreSharedKeys = []ike.PreSharedKey{{Peer: addrA.String(), Key: ipsec.Key("pair-secret")}}
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")
	ta.BackupDestination = addrC
	ta.DPD = idleDPD(300 * time.Millisecond)
	ta.FailoverHoldDown = hold
	ca.Tunnels = []ike.Tunnel{ta}
	cb.DPD, cc.DPD = passiveDPD, passiveDPD
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	cc.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrC, addrA, netB, netA, "esp-aes128-hmac-sha")}
	w := newSim(t)
	blk := newBlocker(w)
	a := newSide(t, w, ca, addrA, 0x1000)
	newSide(t, w, cb, addrB, 0x2000)
	newSide(t, w, cc, addrC, 0x3000)
	a.d.Acquire("t1")
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)

	blk.set(addrB, true)
	w.waitFor(t, a.lis, 10*time.Second, "up with the backup", func(e iketest.Event) bool { return e.Kind == "up" && e.Peer.Addr() == addrC })
	first := tunnelStatus(t, a.d, "t1").Failover
	if first.Count != 1 || first.LastTo != addrC || !strings.HasPrefix(first.LastReason, "dpd: peer 192.0.2.2 dead") || first.LastDuration <= 0 {
		t.Fatalf("after the first failover: %+v", first)
	}

	blk.set(addrB, false) // the destination is back
	blk.set(addrC, true)  // and the backup gone
	w.waitFor(t, a.lis, 10*time.Second, "backup dead", func(e iketest.Event) bool { return e.Kind == "dead" && e.Peer.Addr() == addrC })
	back := w.waitFor(t, a.lis, 15*time.Second, "failover back", func(e iketest.Event) bool { return e.Kind == "failover" && e.To == addrB })
	if back.From != addrC {
		t.Errorf("failover %v", back)
	}
	w.waitFor(t, a.lis, 10*time.Second, "up with the destination again", func(e iketest.Event) bool {
		return e.Kind == "up" && e.Peer.Addr() == addrB && e.At.After(back.At)
	})
	second := tunnelStatus(t, a.d, "t1").Failover
	if second.Count != 2 || second.OnBackup || second.LastTo != addrB {
		t.Fatalf("after the second failover: %+v", second)
	}
	if second.LastAt.Before(first.LastAt.Add(hold)) {
		t.Errorf("second switch at %v, %v after the first: within the hold-down of %v", second.LastAt, second.LastAt.Sub(first.LastAt), hold)
	}
}

// TestPairDPDAggressive: in aggressive mode the vendor IDs travel in the
// first two messages; both ends learn that the other supports DPD.
func TestPairDPDAggressive(t *testing.T) {
	t.Parallel()
	ca, cb := baseConfig(), baseConfig()
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")
	ta.Mode, ta.DPD = ike.AggressiveMode, idleDPD(300*time.Millisecond)
	ca.Tunnels = []ike.Tunnel{ta}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	cb.DPD = passiveDPD
	a, b, w := newPair(t, ca, cb)
	a.d.Acquire("t1")
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	for _, s := range []*pairSide{a, b} {
		if sas := s.d.Status().IKESAs; len(sas) != 1 || sas[0].Mode != ike.AggressiveMode || !sas[0].DPD || !sas[0].PeerDPD {
			t.Fatalf("IKE SAs %+v", sas)
		}
	}
	w.waitUntil(t, 10*time.Second, "an idle inquiry answered", func() bool { return a.d.Status().Counters.DPDAcks >= 1 })
}
