package ism

import (
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/lookaside"
)

// Dead peer detection and tunnel failover end to end (the seed's "DPD and
// IPSec Tunnel Failover"): ISM against strongSwan, with the timers
// shortened through the configuration only. Timings are logged against
// the configured timers; a test fails on one only where DPD acted before
// its timers allowed, which load cannot cause.

// failoverTimers drive DPD by the traffic rule: the idle rule is out of
// the way (an hour), so a peer declared dead within the test's time was
// declared dead because traffic went to it and nothing came back.
var failoverTimers = dpdTimers{sent: 2 * time.Second, silent: 4 * time.Second, idle: time.Hour,
	retryInterval: time.Second, retries: 2}

// pingInterval paces the traffic through the tunnel.
const pingInterval = 200 * time.Millisecond

// earlyTolerance allows for the clocks of the data path and of ping
// differing by a little when checking that DPD did not act early.
const earlyTolerance = 250 * time.Millisecond

// peerLoss is how a test takes a peer away and brings it back.
type peerLoss struct {
	name    string
	lose    func(t *testing.T, env *swantest.Env)
	restore func(t *testing.T, env *swantest.Env, conf swantest.Conf)
}

var peerLosses = []peerLoss{
	{name: "kill",
		lose:    func(t *testing.T, env *swantest.Env) { env.Kill() },
		restore: func(t *testing.T, env *swantest.Env, conf swantest.Conf) { env.StartCharon(conf) }},
	{name: "link-down",
		lose: func(t *testing.T, env *swantest.Env) {
			if err := env.SetLink(false); err != nil {
				t.Fatal(err)
			}
		},
		restore: func(t *testing.T, env *swantest.Env, _ swantest.Conf) {
			if err := env.SetLink(true); err != nil {
				t.Fatal(err)
			}
		}},
}

// TestDPDFailover: traffic flows through the tunnel to its destination;
// the destination is lost (charon killed by pid, or its link down). ISM's
// DPD declares it dead by the traffic rule, clears its SAs, sends the dpd,
// tunnel-down and failover traps, and the traffic resumes through the
// backup destination. Then the destination comes back and the backup is
// lost: the traffic returns to the destination.
func TestDPDFailover(t *testing.T) {
	t.Parallel()
	for _, loss := range peerLosses {
		t.Run(loss.name, func(t *testing.T) {
			t.Parallel()
			x := newLab(t, dpdSpec(dpdLabConfig{global: failoverTimers.lines() + "ipsec failover hold-down 2\n", backup: true, traps: true}))
			p := startPinger(t, x.env.NSISM, "198.51.100.1", "203.0.113.1", pingInterval)
			p.waitReplies(t, "through the tunnel to the destination", time.Time{}, 5, 30*time.Second)
			x.waitUpWith(t, swantest.SwanAddr, 5*time.Second)
			x.traps.wait(t, "tunnel-up", 0, 10*time.Second, trapIs(oidTrapTunnelUp, swantest.SwanAddr))

			x.switchOver(t, p, loss, x.env, swantest.SwanAddr, x.backup, swanBackupAddr, 1)
			loss.restore(t, x.env, x.primaryConf)
			x.switchOver(t, p, loss, x.backup, swanBackupAddr, x.env, swantest.SwanAddr, 2)
		})
	}
}

// switchOver loses the peer the tunnel uses (from) and checks that DPD
// declares it dead, its SAs go, the traps arrive and the traffic resumes
// with to; n counts the switches so far, this one included.
func (x *lab) switchOver(t *testing.T, p *pinger, loss peerLoss, fromEnv *swantest.Env, from netip.Addr, toEnv *swantest.Env, to netip.Addr, n int) {
	t.Helper()
	_, before := showSAs(t, x.g)
	old := saSPIs(before, from)
	if len(old) != 2 {
		t.Fatalf("before losing %s: want its inbound and outbound SA, have %+v", from, before)
	}
	seen := len(x.traps.traps(t))
	lostAt := time.Now()
	loss.lose(t, fromEnv)
	deadAt := x.waitDead(t, from, lostAt, 30*time.Second)
	restored := p.waitReplies(t, "through the tunnel to "+to.String(), deadAt, 3, 30*time.Second)
	lastReply := p.lastReplyBefore(lostAt.Add(time.Millisecond))

	// The timings, against the configured timers.
	want := failoverTimers.trafficDeath()
	t.Logf("%s %s: declared dead %v after its last reply (%v after the loss; the timers give %v, target at most %v); traffic through %s %v after detection (target 1s); %d pings lost",
		loss.name, from, deadAt.Sub(lastReply).Round(time.Millisecond), deadAt.Sub(lostAt).Round(time.Millisecond), want,
		want+failoverTimers.retryInterval, to, restored.Sub(deadAt).Round(time.Millisecond), p.lostAcross(lostAt, restored))
	if early := deadAt.Sub(lastReply); early < want-earlyTolerance {
		t.Errorf("%s declared dead %v after its last reply: before the configured %v (silent %v, then %d R-U-THEREs %v apart)",
			from, early, want, failoverTimers.silent, failoverTimers.retries+1, failoverTimers.retryInterval)
	}
	if !restored.After(deadAt) || !deadAt.After(lostAt) {
		t.Errorf("out of order: lost %s, dead %s, traffic again %s", lostAt.Format(time.StampMilli), deadAt.Format(time.StampMilli), restored.Format(time.StampMilli))
	}

	// show ipsec tunnel detail: DPD's verdict and the switch. With a
	// backup destination the route stays.
	st := x.waitUpWith(t, to, 10*time.Second)
	x.waitRoute(t, true)
	text, _ := x.tunnel(t)
	reason := "dpd: peer " + from.String() + " dead after 3 unanswered R-U-THERE"
	f := st.IKE.Failover
	if f.Count != n || f.LastFrom != from || f.LastTo != to || f.LastReason != reason || f.OnBackup != (to == swanBackupAddr) || f.LastDuration <= 0 {
		t.Errorf("failover state %+v, want switch %d from %s to %s (%s)", f, n, from, to, reason)
	}
	for _, w := range []string{
		"Secure IP interface ipsec:t1 is up",
		"IKE SA (phase 1) with " + to.String(),
		"Child SAs (phase 2): up",
		"DPD: on, peer supports it: true",
		"peer " + from.String() + " declared dead at " + deadAt.Format(time.DateTime),
		"last from " + from.String() + " to " + to.String(),
		"(" + reason + "), traffic restored",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("show ipsec tunnel detail lacks %q:\n%s", w, text)
		}
	}

	// The SAs with the dead peer are gone from the SA database and from
	// show ipsec sa; the new ones carry the traffic.
	saText, sas := showSAs(t, x.g)
	if left := saSPIs(sas, from); len(left) != 0 {
		t.Errorf("SAs with %s left after it was declared dead: %v\n%s", from, left, saText)
	}
	for _, spi := range old {
		if strings.Contains(saText, spi) {
			t.Errorf("show ipsec sa still shows SPI %s of the dead peer:\n%s", spi, saText)
		}
	}
	x.checkSADatabase(t, old)
	for _, sa := range sas {
		if sa.Packets == 0 {
			t.Errorf("SA %s %s with %s carried no packet:\n%s", sa.Direction, sa.SPI, to, saText)
		}
	}
	if sas := charonChildren(t, toEnv); sas == 0 {
		t.Errorf("charon at %s has no installed CHILD_SA", to)
	}

	// The traps, in the order they were sent: the peer dead, the tunnel
	// down because of it, the switch, the tunnel up with the other peer.
	_, i := x.traps.wait(t, "dpd", seen, 5*time.Second, trapIs(oidTrapDPDPeerDead, from))
	down, j := x.traps.wait(t, "tunnel-down", seen, 5*time.Second, trapIs(oidTrapTunnelDown, from))
	fo, k := x.traps.wait(t, "failover", seen, 5*time.Second, func(r rxTrap) bool {
		return r.oid == oidTrapFailover && r.vars[oidVarFrom] == from.String() && r.vars[oidVarTo] == to.String()
	})
	_, l := x.traps.wait(t, "tunnel-up", seen, 5*time.Second, trapIs(oidTrapTunnelUp, to))
	if fo.vars[oidVarReason] != reason {
		t.Errorf("failover trap reason %q, want %q", fo.vars[oidVarReason], reason)
	}
	if !strings.HasPrefix(down.vars[oidVarReason], "dpd: peer "+from.String()+" dead") {
		t.Errorf("tunnel-down trap reason %q, want DPD's", down.vars[oidVarReason])
	}
	if !(i < k && j < k && k < l) {
		t.Errorf("traps out of order (dpd %d, tunnel-down %d, failover %d, tunnel-up %d): %v", i, j, k, l, x.traps.traps(t)[seen:])
	}
}

// checkSADatabase checks that the SA database holds none of the SPIs.
func (x *lab) checkSADatabase(t *testing.T, spis []string) {
	t.Helper()
	for _, sa := range allSAs(x.g) {
		for _, spi := range spis {
			if sa.SPI == spi {
				t.Errorf("SA database still holds SA %s of the dead peer", spi)
			}
		}
	}
}

// trapIs accepts a trap of kind oid about destination dest of ipsec:t1.
func trapIs(oid string, dest netip.Addr) func(rxTrap) bool {
	return func(r rxTrap) bool {
		return r.oid == oid && r.vars[oidVarTunnelName] == "ipsec:t1" && r.vars[oidVarDestination] == dest.String()
	}
}

// charonChildren counts charon's installed CHILD_SAs.
func charonChildren(t *testing.T, env *swantest.Env) int {
	t.Helper()
	sas, err := env.ListSAs()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sa := range sas {
		for _, c := range sa.Children {
			if c.F["state"] == "INSTALLED" {
				n++
			}
		}
	}
	return n
}

// TestDPDSetupFailover: the destination fails phase 1 (charon there has
// another pre-shared key): an ike-failure trap reports it, the tunnel
// switches to the backup destination and the traffic goes there. The
// tunnel uses aggressive mode, where the destination's wrong key shows in
// its first answer (HASH_R, RFC 2409 §5.4); in main mode ISM learns it only
// when its retransmissions of MM5 run out, which takes over a minute with
// the built-in schedule.
func TestDPDSetupFailover(t *testing.T) {
	t.Parallel()
	x := newLab(t, dpdSpec(dpdLabConfig{global: "ipsec failover hold-down 2\n", backup: true, traps: true,
		aggressive: true, primaryPSK: "not-the-key-ism-has"}))
	p := startPinger(t, x.env.NSISM, "198.51.100.1", "203.0.113.1", pingInterval)
	start := time.Now()
	p.waitReplies(t, "through the tunnel to the backup", time.Time{}, 3, 45*time.Second)
	t.Logf("traffic through the backup %v after the first packet", time.Since(start).Round(time.Millisecond))
	st := x.waitUpWith(t, swanBackupAddr, 5*time.Second)
	f := st.IKE.Failover
	if f.Count != 1 || f.LastFrom != swantest.SwanAddr || f.LastTo != swanBackupAddr || !f.OnBackup || !strings.HasPrefix(f.LastReason, "phase 1: ") {
		t.Errorf("failover state %+v, want one switch to the backup after phase 1 failed", f)
	}
	ikeFail, _ := x.traps.wait(t, "ike-failure", 0, 5*time.Second, trapIs(oidTrapIKEFailure, swantest.SwanAddr))
	fo, _ := x.traps.wait(t, "failover", 0, 5*time.Second, func(r rxTrap) bool {
		return r.oid == oidTrapFailover && r.vars[oidVarFrom] == swantest.SwanAddr.String() && r.vars[oidVarTo] == swanBackupAddr.String()
	})
	x.traps.wait(t, "tunnel-up", 0, 5*time.Second, trapIs(oidTrapTunnelUp, swanBackupAddr))
	if fo.vars[oidVarReason] != f.LastReason {
		t.Errorf("failover trap reason %q, want %q", fo.vars[oidVarReason], f.LastReason)
	}
	if ikeFail.vars[oidVarReason] == "" {
		t.Error("ike-failure trap without a reason")
	}
	if _, sas := showSAs(t, x.g); len(saSPIs(sas, swantest.SwanAddr)) != 0 {
		t.Errorf("SAs with the destination that refused: %+v", sas)
	}
	if c := statsIKE(t, x.g); c.Failovers != 1 || c.DPDPeersDead != 0 {
		t.Errorf("IKE counters %+v: want one failover and no DPD verdict", c)
	}
}

// charon's log lines for IKEv1 DPD messages (swantest logs enc at level 1,
// which shows the payloads of every message it parses and generates).
var (
	swanGotRUThere = regexp.MustCompile(`parsed INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD\) \]`)
	swanSentAck    = regexp.MustCompile(`generating INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD_ACK\) \]`)
)

// TestDPDIdle: a tunnel without any traffic (charon brings it up, nobody
// sends): after the idle time ISM sends an R-U-THERE, which charon logs
// and answers; never before the idle time.
func TestDPDIdle(t *testing.T) {
	t.Parallel()
	timers := dpdTimers{sent: time.Hour, silent: time.Hour, idle: 3 * time.Second, retryInterval: time.Second, retries: 2}
	x := newLab(t, dpdSpec(dpdLabConfig{global: timers.lines()}))
	if out, err := x.env.Initiate("net", 15*time.Second); err != nil {
		t.Fatalf("charon initiate: %v\n%s", err, out)
	}
	st := x.waitUpWith(t, swantest.SwanAddr, 10*time.Second)
	upAt := st.Since
	var firstInquiry time.Time
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := statsIKE(t, x.g)
		if c.DPDInquiries > 0 && firstInquiry.IsZero() {
			firstInquiry = time.Now()
		}
		if c.DPDAcks >= 1 && len(swanGotRUThere.FindAllString(x.env.Log(), -1)) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answered inquiry: IKE counters %+v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("first R-U-THERE seen %v after the tunnel came up (idle %v)", firstInquiry.Sub(upAt).Round(time.Millisecond), timers.idle)
	if early := firstInquiry.Sub(upAt); early < timers.idle-earlyTolerance {
		t.Errorf("an inquiry %v after the tunnel came up, before the idle time of %v", early, timers.idle)
	}
	if n := len(swanSentAck.FindAllString(x.env.Log(), -1)); n == 0 {
		t.Error("charon logged no R-U-THERE-ACK")
	}
	text, st := x.tunnel(t)
	if st.State != "up" || st.Inbound.Packets != 0 || st.Outbound.Packets != 0 || !st.IKE.DPD.PeerSupports || st.IKE.DPD.LastSequence == 0 {
		t.Errorf("after the idle inquiry: want the tunnel up, no traffic, the inquiry's sequence number:\n%s", text)
	}
	if c := statsIKE(t, x.g); c.DPDPeersDead != 0 {
		t.Errorf("IKE counters %+v: an answering peer declared dead", c)
	}
}

// TestDPDNoBackupRoutes: a tunnel without a backup destination whose peer
// dies is down with DPD's reason, has no SAs, and its route leaves the
// operational VR, so that other paths may take over; when the peer comes
// back and brings the tunnel up again, the route returns and so does the
// traffic.
func TestDPDNoBackupRoutes(t *testing.T) {
	t.Parallel()
	x := newLab(t, dpdSpec(dpdLabConfig{global: failoverTimers.lines()}))
	p := startPinger(t, x.env.NSISM, "198.51.100.1", "203.0.113.1", pingInterval)
	p.waitReplies(t, "through the tunnel", time.Time{}, 3, 30*time.Second)
	x.waitUpWith(t, swantest.SwanAddr, 5*time.Second)
	x.waitRoute(t, true)

	lostAt := time.Now()
	x.env.Kill()
	deadAt := x.waitDead(t, swantest.SwanAddr, lostAt, 30*time.Second)
	t.Logf("declared dead %v after charon was killed", deadAt.Sub(lostAt).Round(time.Millisecond))
	x.waitRoute(t, false)
	text, st := x.tunnel(t)
	for _, w := range []string{"Secure IP interface ipsec:t1 is down", "Down because: dpd: peer 192.0.2.2 dead"} {
		if !strings.Contains(text, w) {
			t.Errorf("show ipsec tunnel detail lacks %q:\n%s", w, text)
		}
	}
	if len(st.SAs) != 0 || len(allSAs(x.g)) != 0 {
		t.Errorf("SAs left after the peer died: %+v", st.SAs)
	}
	if saText, _ := showSAs(t, x.g); strings.TrimSpace(saText) != "" {
		t.Errorf("show ipsec sa after the peer died:\n%s", saText)
	}

	x.env.StartCharon(x.primaryConf)
	back := time.Now()
	if out, err := x.env.Initiate("net", 15*time.Second); err != nil {
		t.Fatalf("charon initiate: %v\n%s", err, out)
	}
	x.waitUpWith(t, swantest.SwanAddr, 10*time.Second)
	x.waitRoute(t, true)
	p.waitReplies(t, "through the tunnel again", back, 3, 15*time.Second)
}

// waitRoute waits until the route to 203.0.113.0/24 through the secure
// interface is in ISM's namespace (want) or gone from it.
func (x *lab) waitRoute(t *testing.T, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", x.env.NSISM, "route", "show", "203.0.113.0/24").CombinedOutput()
		if err != nil {
			t.Fatalf("ip route: %v\n%s", err, out)
		}
		if strings.Contains(string(out), "dev "+lookaside.TUNName) == want {
			return
		}
		if time.Now().After(deadline) {
			text, _ := x.tunnel(t)
			t.Fatalf("route to 203.0.113.0/24 via %s present: %v, want %v\nip route: %s\n%s", lookaside.TUNName, !want, want, out, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allSAs returns every SA the gateway's tunnels hold.
func allSAs(g *Gateway) []datapath.SAStatus {
	var out []datapath.SAStatus
	for _, t := range g.Tunnels() {
		out = append(out, t.SAs...)
	}
	return out
}
