package ism

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/operator"
)

// The DPD and failover lab: ISM in process, running in its own namespace
// (NSISM, which is also its VR), against strongSwan's charon at 192.0.2.2
// as the tunnel destination and, optionally, a second charon at 192.0.2.3
// in a third namespace as the backup destination (swantest.AddPeer), and
// a real snmptrapd in a fourth namespace as the receiver of the traps.
// Each test has its own namespaces, so the tests run in parallel.

// swanBackupAddr is the backup charon's address.
var swanBackupAddr = netip.MustParseAddr("192.0.2.3")

// dpdLabConfig describes one lab.
type dpdLabConfig struct {
	// global is ISM's global lines (DPD timers, hold-down); tunnel the
	// tunnel block's extra lines.
	global, tunnel string
	backup         bool
	// primaryPSK is the destination charon's key, swanPSK when empty.
	primaryPSK string
	// aggressive makes both ends use IKEv1 aggressive mode.
	aggressive bool
	traps      bool
}

// dpdLab is a running lab.
type dpdLab struct {
	env         *swantest.Env // the destination's charon; NSISM is ISM's namespace
	backup      *swantest.Env // the backup destination's charon, or nil
	primaryConf swantest.Conf
	backupConf  swantest.Conf
	g           *Gateway
	traps       *trapRx // nil without traps
	log         *syncBuffer
}

// dpdSwanConn renders a charon at local for ISM's tunnel: IKEv1 main mode
// (or aggressive mode), PSK psk, one child "net" for 203.0.113.0/24
// (charon) and 198.51.100.0/24 (ISM), without DPD of its own.
func dpdSwanConn(local netip.Addr, psk string, aggressive bool) swantest.Conf {
	aggr := "no"
	if aggressive {
		aggr = "yes"
	}
	return swantest.Conf{InstallRoutes: true, AggressivePSK: aggressive, Swanctl: fmt.Sprintf(`connections {
  ism {
    version = 1
    aggressive = %[4]s
    local_addrs = %[1]s
    remote_addrs = %[2]s
    proposals = aes128-sha1-modp2048
    rekey_time = 0
    local {
      auth = psk
      id = %[1]s
    }
    remote {
      auth = psk
      id = %[2]s
    }
    children {
      net {
        local_ts = 203.0.113.0/24
        remote_ts = 198.51.100.0/24
        esp_proposals = aes128-sha1
        mode = tunnel
        start_action = none
      }
    }
  }
}
secrets {
  ike-1 {
    id-a = %[1]s
    id-b = %[2]s
    secret = %[3]q
  }
}
`, local, swantest.ISMAddr, psk, aggr)}
}

// dpdISMConfig renders ISM's side: tunnel ipsec:t1 from 192.0.2.1 to
// 192.0.2.2 (and 192.0.2.3 as backup) for 198.51.100.0/24 ↔
// 203.0.113.0/24, routed.
func dpdISMConfig(ns string, c dpdLabConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "virtual-router v netns %s\n", ns)
	b.WriteString("ipsec isakmp-policy-rule 1\n  encryption aes128\n  hash sha\n  group 14\n  authentication pre-shared-key\n")
	fmt.Fprintf(&b, "ipsec pre-shared-key address %s ascii %s\n", swantest.SwanAddr, swanPSK)
	fmt.Fprintf(&b, "ipsec pre-shared-key address %s ascii %s\n", swanBackupAddr, swanPSK)
	b.WriteString(c.global)
	if c.traps {
		b.WriteString(trapHostLine())
	}
	b.WriteString("ipsec transform-set ts\n  transform 1 esp-aes128-hmac-sha\n")
	fmt.Fprintf(&b, "interface tunnel ipsec:t1\n  virtual-router v\n  tunnel source %s\n  tunnel destination %s\n", swantest.ISMAddr, swantest.SwanAddr)
	if c.backup {
		fmt.Fprintf(&b, "  tunnel destination backup %s\n", swanBackupAddr)
	}
	b.WriteString("  tunnel transform-set ts\n  tunnel local-selector 198.51.100.0 255.255.255.0\n  tunnel remote-selector 203.0.113.0 255.255.255.0\n")
	if c.aggressive {
		b.WriteString("  tunnel ike-mode aggressive\n")
	}
	b.WriteString(c.tunnel)
	b.WriteString("ip route 203.0.113.0 255.255.255.0 ipsec:t1\n")
	return b.String()
}

func newDPDLab(t *testing.T, c dpdLabConfig) *dpdLab {
	t.Helper()
	env := swantest.New(t)
	psk := c.primaryPSK
	if psk == "" {
		psk = swanPSK
	}
	x := &dpdLab{env: env, primaryConf: dpdSwanConn(swantest.SwanAddr, psk, c.aggressive), log: &syncBuffer{}}
	env.StartCharon(x.primaryConf)
	t.Cleanup(func() {
		if t.Failed() {
			env.Dump()
			t.Logf("ISM's log:\n%s", x.log.String())
		}
	})
	if c.backup {
		x.backup = env.AddPeer(t, swanBackupAddr)
		x.backupConf = dpdSwanConn(swanBackupAddr, swanPSK, c.aggressive)
		x.backup.StartCharon(x.backupConf)
		t.Cleanup(x.backup.Dump)
	}
	if c.traps {
		x.traps = startTrapRx(t, env.NSISM)
	}
	x.g = gatewayIn(t, env.NSISM, dpdISMConfig(env.NSISM, c), x.log)
	return x
}

// gatewayIn starts a gateway from a thread inside namespace ns: the
// daemon's own namespace, where its trap sockets live, is ns.
func gatewayIn(t *testing.T, ns, text string, log *syncBuffer) *Gateway {
	t.Helper()
	cfg, err := config.Parse("test.conf", strings.NewReader(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	o := Options{Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})), NoXFRM: true}
	var g *Gateway
	if err := swantest.InNamespace(ns, func() (err error) {
		g, err = New(cfg, o)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// syncBuffer is a bytes.Buffer safe for concurrent writers: the gateway's
// log, shown when a test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tunnel returns what `show ipsec tunnel detail ipsec:t1` shows, as text
// and as data.
func (x *dpdLab) tunnel(t *testing.T) (string, operator.TunnelStatus) {
	t.Helper()
	return showTunnel(t, x.g)
}

func showTunnel(t *testing.T, g *Gateway) (string, operator.TunnelStatus) {
	t.Helper()
	text, data, err := g.Exec("show ipsec tunnel detail ipsec:t1")
	if err != nil {
		t.Fatal(err)
	}
	ts := data.([]operator.TunnelStatus)
	if len(ts) != 1 || ts[0].IKE == nil {
		t.Fatalf("show ipsec tunnel detail: want one signaled tunnel:\n%s", text)
	}
	return text, ts[0]
}

// statsIKE returns the IKE counters of `show ipsec statistics`.
func statsIKE(t *testing.T, g *Gateway) ike.Counters {
	t.Helper()
	_, data, err := g.Exec("show ipsec statistics")
	if err != nil {
		t.Fatal(err)
	}
	st := data.(operator.Statistics)
	if st.IKE == nil {
		t.Fatal("show ipsec statistics: no IKE counters")
	}
	return *st.IKE
}

// showSAs returns `show ipsec sa` as text and data.
func showSAs(t *testing.T, g *Gateway) (string, []datapath.SAStatus) {
	t.Helper()
	text, data, err := g.Exec("show ipsec sa")
	if err != nil {
		t.Fatal(err)
	}
	sas, _ := data.([]datapath.SAStatus)
	return text, sas
}

// waitDead waits until DPD has declared peer dead (after, if not zero,
// the time after) and returns when it did, as show ipsec tunnel detail
// reports it.
func (x *dpdLab) waitDead(t *testing.T, peer netip.Addr, after time.Time, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text, st := x.tunnel(t)
		if d := st.IKE.DPD; d.DeadPeer == peer && d.DeadAt.After(after) {
			return d.DeadAt
		}
		if time.Now().After(deadline) {
			t.Fatalf("DPD did not declare %s dead:\n%s", peer, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitUpWith waits until the tunnel is up with SAs to dest.
func (x *dpdLab) waitUpWith(t *testing.T, dest netip.Addr, timeout time.Duration) operator.TunnelStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text, st := x.tunnel(t)
		if st.State == "up" && st.IKE.Destination == dest && hasSAWith(st.SAs, dest) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnel not up with %s:\n%s", dest, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hasSAWith reports whether an outbound SA goes to peer and an inbound
// one comes from it.
func hasSAWith(sas []datapath.SAStatus, peer netip.Addr) bool {
	in, out := false, false
	for _, sa := range sas {
		in = in || sa.Direction == "inbound" && sa.Source == peer.String()
		out = out || sa.Direction == "outbound" && sa.Destination == peer.String()
	}
	return in && out
}

// saSPIs returns the SPIs of the SAs that carry traffic with peer.
func saSPIs(sas []datapath.SAStatus, peer netip.Addr) []string {
	var out []string
	for _, sa := range sas {
		if sa.Source == peer.String() || sa.Destination == peer.String() {
			out = append(out, sa.SPI)
		}
	}
	return out
}

// dpdTimers are the settings of a lab's DPD, to compare timings with.
type dpdTimers struct {
	sent, silent, idle, retryInterval time.Duration
	retries                           int
}

// lines renders the timers as global configuration lines.
func (d dpdTimers) lines() string {
	return fmt.Sprintf("ipsec dpd on\nipsec dpd timers sent %d silent %d idle %d\nipsec dpd retry interval %d count %d\n",
		int(d.sent.Seconds()), int(d.silent.Seconds()), int(d.idle.Seconds()), int(d.retryInterval.Seconds()), d.retries)
}

// trafficDeath is how long after the last packet from a peer that went
// silent while traffic to it goes on DPD declares it dead: the silent
// time, then the inquiry and each retry unanswered for a retry interval.
func (d dpdTimers) trafficDeath() time.Duration {
	return d.silent + time.Duration(d.retries+1)*d.retryInterval
}
