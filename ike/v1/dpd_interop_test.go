package v1

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/ipsec"
)

// DPD and failover against strongSwan's charon (root, namespaces; each
// case runs in namespaces of its own, in parallel with the others).

// backupAddr is the second charon's address, on a veth link of its own.
var backupAddr = netip.MustParseAddr("192.0.2.3")

// trafficDPD is ISM's DPD for these cases: the traffic rule fast, the idle
// rule out of the way.
func trafficDPD() *ipsec.DPD {
	return &ipsec.DPD{Enabled: true, Sent: time.Second, Silent: time.Second, Idle: time.Hour,
		RetryInterval: 500 * time.Millisecond, Retries: 2}
}

// charonDPDDelay and charonDPDTimeout make charon probe ISM after a
// second without a message from it, and give up on ISM after 4 s without
// an answer (swanctl.conf dpd_delay and, IKEv1 only, dpd_timeout).
const (
	charonDPDDelay   = time.Second
	charonDPDTimeout = 4 * time.Second
)

// sendingOnly makes the installer report what a dead peer looks like to
// the data path: every outbound SA carries packets, no inbound SA does.
func sendingOnly(inst *iketest.Installer) {
	inst.SetUsageFunc(func(_ ipsec.SAID, sa ike.UserSA) ike.SAUsage {
		if sa.Inbound {
			return ike.SAUsage{}
		}
		return ike.SAUsage{Packets: 1, Bytes: 100, LastUsed: time.Now()}
	})
}

// charonChild waits until a charon has an IKE SA established with ISM and
// an installed CHILD_SA whose SPIs are among ISM's installed SAs.
func charonChild(t *testing.T, env *swantest.Env, inst *iketest.Installer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sas, err := env.ListSAs()
		if err != nil {
			t.Fatal(err)
		}
		spis := map[string]bool{}
		for id := range inst.SAs() {
			spis[fmt.Sprintf("%08x", id.SPI)] = true
		}
		for _, sa := range sas {
			for _, c := range sa.Children {
				if sa.F["state"] == "ESTABLISHED" && c.F["state"] == "INSTALLED" && spis[c.F["spi-in"]] && spis[c.F["spi-out"]] {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon has no installed CHILD_SA with ISM's SPIs %v: %+v", spis, sas)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// charonLogged counts the lines of charon's log that match re.
func charonLogged(env *swantest.Env, re *regexp.Regexp) int {
	return len(re.FindAllStringIndex(env.Log(), -1))
}

// charon's log lines for IKEv1 DPD messages (enc level 1 shows the
// payloads of every message it generates and parses).
var (
	swanGotRUThere  = regexp.MustCompile(`parsed INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD\) \]`)
	swanSentAck     = regexp.MustCompile(`generating INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD_ACK\) \]`)
	swanSentRUThere = regexp.MustCompile(`generating INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD\) \]`)
	swanGotAck      = regexp.MustCompile(`parsed INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD_ACK\) \]`)
)

// TestInteropDPDDeadPeer: charon probes ISM every second and ISM answers,
// so charon keeps ISM alive; then charon dies (SIGKILL: it sends nothing
// more). The data path keeps sending and receives nothing, so ISM's
// traffic rule inquires, retries, declares charon dead, deletes every SA
// and reports the tunnel down.
func TestInteropDPDDeadPeer(t *testing.T) {
	swantest.Skip(t)
	t.Parallel()
	cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
	tu := ismTunnel(t, "t1", "esp-aes128-hmac-sha")
	tu.DPD = trafficDPD()
	cfg.Tunnels = []ike.Tunnel{tu}
	x := newInterop(t, cfg, swantest.Conf{Swanctl: swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1",
		DPDDelay: charonDPDDelay, DPDTimeout: charonDPDTimeout}.render()})
	sendingOnly(x.inst)
	x.d.Acquire("t1")
	waitEvent(t, x.lis, "up", "t1", 30*time.Second)
	charonChild(t, x.env, x.inst)
	if sa := x.d.Status().IKESAs[0]; !sa.DPD || !sa.PeerDPD {
		t.Errorf("IKE SA %+v: want DPD announced both ways", sa)
	}
	if !strings.Contains(x.env.Log(), "received DPD vendor ID") {
		t.Error("charon did not see ISM's DPD vendor ID")
	}
	// charon inquires, ISM answers.
	deadline := time.Now().Add(20 * time.Second)
	for x.d.Status().Counters.DPDAnswered < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("ISM answered %d of charon's inquiries", x.d.Status().Counters.DPDAnswered)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := charonLogged(x.env, swanGotAck); n < 2 {
		t.Errorf("charon logged %d R-U-THERE-ACKs from ISM", n)
	}
	charonChild(t, x.env, x.inst) // charon still has ISM: it did not declare ISM dead
	if c := x.d.Status().Counters; c.DPDPeersDead != 0 {
		t.Fatalf("charon declared dead while alive: %+v", c)
	}

	x.env.Kill()
	killed := time.Now()
	dead := waitFor(t, x.lis, 30*time.Second, "dead event", func(e iketest.Event) bool { return e.Kind == "dead" })
	if dead.Tunnel != "t1" || dead.Peer.Addr() != swantest.SwanAddr {
		t.Errorf("dead event %v", dead)
	}
	down := waitFor(t, x.lis, 5*time.Second, "down event", func(e iketest.Event) bool { return e.Kind == "down" })
	if want := "dpd: peer 192.0.2.2 dead after 3 unanswered R-U-THERE"; down.Reason != want {
		t.Errorf("down reason %q, want %q", down.Reason, want)
	}
	t.Logf("charon killed; declared dead %v later", dead.At.Sub(killed))
	if n := len(x.inst.SAs()); n != 0 {
		t.Errorf("%d SAs left", n)
	}
	st := x.d.Status()
	if len(st.IKESAs) != 0 || st.Counters.DPDInquiries < 3 || st.Counters.DPDPeersDead != 1 {
		t.Errorf("after death: IKE SAs %+v, counters %+v", st.IKESAs, st.Counters)
	}
	if ts := x.tunnelStatus(t, "t1"); ts.State != "down" || ts.DPD.DeadPeer != swantest.SwanAddr || ts.DPD.LastSent.IsZero() {
		t.Errorf("tunnel %+v", ts)
	}
}

// TestInteropDPDIdle: no traffic at all and charon's own DPD off: after
// the idle time ISM inquires, charon receives the R-U-THERE and answers.
// Before the idle time has passed, ISM does not inquire.
func TestInteropDPDIdle(t *testing.T) {
	swantest.Skip(t)
	t.Parallel()
	const idle = 1500 * time.Millisecond
	cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
	tu := ismTunnel(t, "t1", "esp-aes128-hmac-sha")
	tu.DPD = &ipsec.DPD{Enabled: true, Sent: time.Hour, Silent: time.Hour, Idle: idle, RetryInterval: time.Second, Retries: 2}
	cfg.Tunnels = []ike.Tunnel{tu}
	x := newInterop(t, cfg, swantest.Conf{Swanctl: swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1"}.render()})
	start := time.Now()
	x.d.Acquire("t1")
	waitEvent(t, x.lis, "up", "t1", 30*time.Second)
	charonChild(t, x.env, x.inst)
	for x.d.Status().Counters.DPDAcks < 2 {
		if x.d.Status().Counters.DPDInquiries > 0 && time.Since(start) < idle {
			t.Fatalf("an inquiry %v after the negotiation started, before the idle time of %v", time.Since(start), idle)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no answered inquiry: %+v", x.d.Status().Counters)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, sent := charonLogged(x.env, swanGotRUThere), charonLogged(x.env, swanSentAck); got < 2 || sent < 2 {
		t.Errorf("charon logged %d R-U-THEREs received and %d ACKs sent", got, sent)
	}
	if n := charonLogged(x.env, swanSentRUThere); n != 0 {
		t.Errorf("charon, with DPD off, sent %d R-U-THEREs", n)
	}
	st := x.tunnelStatus(t, "t1")
	if st.State != "up" || !st.DPD.PeerSupports || st.DPD.LastSequence == 0 || !st.DPD.LastSent.IsZero() {
		t.Errorf("tunnel %+v", st)
	}
}

// TestInteropDPDNotAnnounced: with DPD off on its tunnel ISM does not
// announce DPD; charon, which has DPD on, sees that and sends no
// inquiry.
func TestInteropDPDNotAnnounced(t *testing.T) {
	swantest.Skip(t)
	t.Parallel()
	cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
	cfg.Tunnels = []ike.Tunnel{ismTunnel(t, "t1", "esp-aes128-hmac-sha")}
	x := newInterop(t, cfg, swantest.Conf{Swanctl: swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1",
		DPDDelay: charonDPDDelay, DPDTimeout: charonDPDTimeout}.render()})
	x.d.Acquire("t1")
	waitEvent(t, x.lis, "up", "t1", 30*time.Second)
	charonChild(t, x.env, x.inst)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(x.env.Log(), "DPD not supported by peer, disabled") {
		if time.Now().After(deadline) {
			t.Fatal("charon did not log that ISM does not support DPD")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // two of charon's DPD delays
	if strings.Contains(x.env.Log(), "received DPD vendor ID") {
		t.Error("charon saw a DPD vendor ID from ISM")
	}
	if n := charonLogged(x.env, swanSentRUThere); n != 0 {
		t.Errorf("charon sent %d R-U-THEREs to a peer without DPD", n)
	}
	sa := x.d.Status().IKESAs[0]
	if sa.DPD || !sa.PeerDPD {
		t.Errorf("IKE SA %+v: want charon's DPD announced, not ISM's", sa)
	}
}

// failoverPeers is ISM with a tunnel to charon at 192.0.2.2 (the
// destination) whose backup is a second charon at 192.0.2.3.
type failoverPeers struct {
	*interop
	backup         *swantest.Env
	primaryConf    swantest.Conf
	backupConf     swantest.Conf
	primary, spare netip.Addr
}

func newFailoverPeers(t *testing.T, cfg ike.Config, primaryPSK string) *failoverPeers {
	t.Helper()
	conn := func(local netip.Addr, psk string) swantest.Conf {
		sc := swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1", DPDDelay: charonDPDDelay, DPDTimeout: charonDPDTimeout,
			LocalAddr: local.String(), Secrets: []charon.Secret{{Name: "ike-1", IDs: []string{local.String(), swantest.ISMAddr.String()}, Secret: psk}}}
		return swantest.Conf{Swanctl: sc.render()}
	}
	f := &failoverPeers{primaryConf: conn(swantest.SwanAddr, primaryPSK), backupConf: conn(backupAddr, interopPSK),
		primary: swantest.SwanAddr, spare: backupAddr}
	f.interop = newInterop(t, cfg, f.primaryConf)
	f.backup = f.env.AddPeer(t, backupAddr)
	f.backup.StartCharon(f.backupConf)
	t.Cleanup(f.backup.Dump)
	return f
}

// failoverConfig is ISM's configuration: the tunnel with its backup, DPD
// by traffic, a short hold-down.
func failoverConfig(t *testing.T) ike.Config {
	cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
	cfg.PreSharedKeys = append(cfg.PreSharedKeys, ike.PreSharedKey{Peer: backupAddr.String(), Key: ipsec.Key(interopPSK)})
	tu := ismTunnel(t, "t1", "esp-aes128-hmac-sha")
	tu.BackupDestination = backupAddr
	tu.DPD = trafficDPD()
	tu.FailoverHoldDown = 2 * time.Second
	cfg.Tunnels = []ike.Tunnel{tu}
	return cfg
}

// TestInteropFailover: the destination dies (charon killed): DPD declares
// it dead and the tunnel comes up with the backup. The destination comes
// back and the backup's link goes down: the tunnel goes back to the
// destination. Status shows each switch and how long it took from the
// last packet of the old peer to SAs with the new one.
func TestInteropFailover(t *testing.T) {
	swantest.Skip(t)
	t.Parallel()
	f := newFailoverPeers(t, failoverConfig(t), interopPSK)
	sendingOnly(f.inst)
	f.d.Acquire("t1")
	up := waitFor(t, f.lis, 30*time.Second, "up", func(e iketest.Event) bool { return e.Kind == "up" })
	if up.Peer.Addr() != f.primary {
		t.Fatalf("up with %v, want the destination", up.Peer)
	}
	charonChild(t, f.env, f.inst)

	f.env.Kill()
	fo := waitFor(t, f.lis, 30*time.Second, "failover", func(e iketest.Event) bool { return e.Kind == "failover" })
	if fo.From != f.primary || fo.To != f.spare || !strings.Contains(fo.Reason, "dpd: peer 192.0.2.2 dead") {
		t.Errorf("failover %v", fo)
	}
	waitFor(t, f.lis, 30*time.Second, "up with the backup", func(e iketest.Event) bool { return e.Kind == "up" && e.Peer.Addr() == f.spare })
	charonChild(t, f.backup, f.inst)
	st := f.tunnelStatus(t, "t1")
	if st.Destination != f.spare || !st.Failover.OnBackup || st.Failover.Count != 1 || st.Failover.LastDuration <= 0 {
		t.Fatalf("after the first failover: %+v", st)
	}
	t.Logf("failover to the backup: %v from the last packet of the destination to SAs with the backup", st.Failover.LastDuration)

	f.env.StartCharon(f.primaryConf)
	if err := f.backup.SetLink(false); err != nil {
		t.Fatal(err)
	}
	back := waitFor(t, f.lis, 40*time.Second, "failover back", func(e iketest.Event) bool { return e.Kind == "failover" && e.To == f.primary })
	if back.From != f.spare || !strings.Contains(back.Reason, "dpd: peer 192.0.2.3 dead") {
		t.Errorf("failover %v", back)
	}
	waitFor(t, f.lis, 30*time.Second, "up with the destination again", func(e iketest.Event) bool {
		return e.Kind == "up" && e.Peer.Addr() == f.primary && e.At.After(back.At)
	})
	charonChild(t, f.env, f.inst)
	st = f.tunnelStatus(t, "t1")
	if st.Destination != f.primary || st.Failover.OnBackup || st.Failover.Count != 2 || st.Failover.LastDuration <= 0 {
		t.Fatalf("after the second failover: %+v", st)
	}
	t.Logf("failover back to the destination: %v", st.Failover.LastDuration)
}

// TestInteropFailoverSetup: phase 1 with the destination fails (charon
// there has another pre-shared key): the tunnel switches to the backup
// and comes up there.
func TestInteropFailoverSetup(t *testing.T) {
	swantest.Skip(t)
	t.Parallel()
	cfg := failoverConfig(t)
	cfg.Retransmit = ike.Retransmit{Timeout: 500 * time.Millisecond, Base: 1.5, Tries: 2}
	f := newFailoverPeers(t, cfg, "not-the-key-ism-has")
	f.d.Acquire("t1")
	fo := waitFor(t, f.lis, 30*time.Second, "failover", func(e iketest.Event) bool { return e.Kind == "failover" })
	if fo.From != f.primary || fo.To != f.spare || !strings.HasPrefix(fo.Reason, "phase 1: ") {
		t.Errorf("failover %v", fo)
	}
	up := waitFor(t, f.lis, 30*time.Second, "up", func(e iketest.Event) bool { return e.Kind == "up" })
	if up.Peer.Addr() != f.spare {
		t.Errorf("up with %v, want the backup", up.Peer)
	}
	charonChild(t, f.backup, f.inst)
	if st := f.tunnelStatus(t, "t1"); st.Destination != f.spare || st.Failover.Count != 1 || st.Failover.LastReason != fo.Reason {
		t.Errorf("status %+v", st)
	}
}
