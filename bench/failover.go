package bench

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/ism"
)

// FailoverConfig is what `ismbench failover` runs with: ISM's DPD timers
// and failover hold-down as its configuration sets them (whole seconds),
// how the destination is lost, and the probe interval.
type FailoverConfig struct {
	Sent, Silent, Idle, RetryInterval time.Duration
	Retries                           int
	HoldDown                          time.Duration
	// Loss is "kill" (charon killed by pid: it sends nothing more) or
	// "link-down" (its link down: it lives on, unreachable).
	Loss string
	// Interval separates two probes.
	Interval time.Duration
}

// DefaultFailoverConfig is the benchmark's default: the traffic rule
// fast, the seed's idle time, one retry interval of a second.
var DefaultFailoverConfig = FailoverConfig{Sent: 2 * time.Second, Silent: 4 * time.Second, Idle: 150 * time.Second,
	RetryInterval: time.Second, Retries: 2, HoldDown: 2 * time.Second, Loss: "kill", Interval: 10 * time.Millisecond}

// ExpectedDetect is when DPD declares dead a destination that went
// silent while traffic to it went on: after the silent time, then the
// inquiry and each retry unanswered for a retry interval.
func (c FailoverConfig) ExpectedDetect() time.Duration {
	return c.Silent + time.Duration(c.Retries+1)*c.RetryInterval
}

// TargetDetect is the detection target: the DPD time and one retry
// interval more.
func (c FailoverConfig) TargetDetect() time.Duration { return c.ExpectedDetect() + c.RetryInterval }

// TargetRestore is the target from detection to traffic through the
// backup destination.
const TargetRestore = time.Second

func (c FailoverConfig) validate() error {
	for _, d := range []time.Duration{c.Sent, c.Silent, c.Idle, c.RetryInterval} {
		if d < time.Second || d%time.Second != 0 {
			return fmt.Errorf("bench: DPD timers are whole seconds, at least 1 (have %v)", d)
		}
	}
	switch {
	case c.Retries < 1:
		return fmt.Errorf("bench: DPD retry count %d, want at least 1", c.Retries)
	case c.HoldDown < 0 || c.HoldDown%time.Second != 0:
		return fmt.Errorf("bench: hold-down %v, want whole seconds", c.HoldDown)
	case c.Loss != "kill" && c.Loss != "link-down":
		return fmt.Errorf("bench: loss %q, want kill or link-down", c.Loss)
	case c.Interval <= 0:
		return fmt.Errorf("bench: probe interval %v", c.Interval)
	}
	return nil
}

// FailoverResult is one run of `ismbench failover`: from the loss of the
// tunnel's destination to DPD's verdict, and from the verdict to the
// first packet through the backup destination, with the timers used.
type FailoverResult struct {
	Run  int    `json:"run"`
	Loss string `json:"loss"`
	// DetectS: from the loss to TunnelDPD.DeadAt.
	DetectS float64 `json:"detect_s"`
	// RestoreAfterDetectS: from DeadAt to the first probe answered
	// through the backup destination.
	RestoreAfterDetectS float64 `json:"restore_after_detect_s"`
	// LostPackets of ProbePackets probes sent from the first one
	// answered to the end got no answer.
	LostPackets  int     `json:"lost_packets"`
	ProbePackets int     `json:"probe_packets"`
	IntervalMS   float64 `json:"probe_interval_ms"`
	// IKEFailoverS is TunnelFailover.LastDuration: from the last packet
	// from the old destination to SAs with the new one, as IKE measured.
	IKEFailoverS      float64 `json:"ike_failover_s"`
	DPDSentS          float64 `json:"dpd_sent_s"`
	DPDSilentS        float64 `json:"dpd_silent_s"`
	DPDIdleS          float64 `json:"dpd_idle_s"`
	DPDRetryIntervalS float64 `json:"dpd_retry_interval_s"`
	DPDRetries        int     `json:"dpd_retries"`
	HoldDownS         float64 `json:"failover_hold_down_s"`
	ExpectedDetectS   float64 `json:"expected_detect_s"`
	TargetDetectS     float64 `json:"target_detect_s"`
	TargetRestoreS    float64 `json:"target_restore_s"`
	MetDetect         bool    `json:"met_detect_target"`
	MetRestore        bool    `json:"met_restore_target"`

	Timeline FailoverTimeline `json:"timeline"`
}

// FailoverTimeline is the probe stream of a failover run in bins of BinS
// seconds, the first starting StartS seconds from the loss of the
// destination (negative: before it): probes sent and lost in each, from
// the first probe answered to the last.
type FailoverTimeline struct {
	BinS   float64 `json:"bin_s"`
	StartS float64 `json:"start_s"`
	Sent   []int   `json:"sent"`
	Lost   []int   `json:"lost"`
}

// failoverBin is the timeline's bin width.
const failoverBin = 100 * time.Millisecond

// Echo servers' marks: which destination answered.
const (
	fromPrimary byte = 1
	fromBackup  byte = 2
)

// backupAddr is the backup destination's address.
var backupAddr = netip.MustParseAddr("192.0.2.3")

// MeasureFailover runs the failover benchmark once (root): ISM in
// process against two charons in namespaces of their own, the tunnel's
// destination (192.0.2.2) and its backup destination (192.0.2.3); a
// stream of numbered UDP probes through the tunnel, echoed by a server
// behind each charon; then the destination is lost as c.Loss says.
func MeasureFailover(c FailoverConfig, run int) (FailoverResult, error) {
	r := FailoverResult{Run: run, Loss: c.Loss, IntervalMS: float64(c.Interval) / float64(time.Millisecond),
		DPDSentS: c.Sent.Seconds(), DPDSilentS: c.Silent.Seconds(), DPDIdleS: c.Idle.Seconds(),
		DPDRetryIntervalS: c.RetryInterval.Seconds(), DPDRetries: c.Retries, HoldDownS: c.HoldDown.Seconds(),
		ExpectedDetectS: c.ExpectedDetect().Seconds(), TargetDetectS: c.TargetDetect().Seconds(), TargetRestoreS: TargetRestore.Seconds()}
	if err := c.validate(); err != nil {
		return r, err
	}
	var h harness
	err := h.run(func() {
		primary := swanEnv(&h)
		primary.StartCharon(swanConf(charon.SwanAddr.String()))
		backup := primary.AddPeer(&h, tempDir(&h), backupAddr)
		backup.StartCharon(swanConf(backupAddr.String()))
		startEcho(&h, primary.NSSwan, "203.0.113.1", fromPrimary)
		startEcho(&h, backup.NSSwan, "203.0.113.1", fromBackup)
		g := startGateway(&h, failoverISMConfig(primary.NSISM, c))
		p := startProber(&h, primary.NSISM, "198.51.100.1", "203.0.113.1", c.Interval)

		// The tunnel is up with the destination and steady.
		p.waitFrom(&h, "through the destination", fromPrimary, time.Time{}, 30*time.Second)
		time.Sleep(time.Second)

		lostAt := time.Now()
		switch c.Loss {
		case "kill":
			primary.Kill()
		case "link-down":
			if err := primary.SetLink(false); err != nil {
				h.Fatalf("bench: link down: %v", err)
			}
		}
		deadAt := waitDeadAt(&h, g, charon.SwanAddr, lostAt, c.TargetDetect()+30*time.Second)
		restored := p.waitFrom(&h, "through the backup destination", fromBackup, lostAt, 30*time.Second)
		time.Sleep(time.Second)
		p.halt()
		time.Sleep(300 * time.Millisecond) // the last answers
		r.LostPackets, r.ProbePackets = p.lost()
		first, sent, lost := p.timeline(lostAt, failoverBin)
		r.Timeline = FailoverTimeline{BinS: failoverBin.Seconds(), StartS: float64(first) * failoverBin.Seconds(), Sent: sent, Lost: lost}
		r.DetectS = deadAt.Sub(lostAt).Seconds()
		r.RestoreAfterDetectS = restored.Sub(deadAt).Seconds()
		r.MetDetect = deadAt.Sub(lostAt) <= c.TargetDetect()
		r.MetRestore = restored.Sub(deadAt) <= TargetRestore
		if st := ikeStatus(&h, g); st.Failover.Count == 1 && st.Failover.LastTo == backupAddr {
			r.IKEFailoverS = st.Failover.LastDuration.Seconds()
		} else {
			h.Fatalf("bench: tunnel did not fail over once to %s: %+v", backupAddr, st.Failover)
		}
	})
	return r, err
}

// failoverISMConfig is ISM's configuration: tunnel ipsec:bench from
// 192.0.2.1 to 192.0.2.2, backup 192.0.2.3, DPD and hold-down from c.
func failoverISMConfig(netns string, c FailoverConfig) string {
	return fmt.Sprintf(`virtual-router v netns %[1]s
ipsec isakmp-policy-rule 1
  encryption aes128
  hash sha
  group 14
  authentication pre-shared-key
ipsec pre-shared-key address %[2]s ascii %[4]s
ipsec pre-shared-key address %[3]s ascii %[4]s
ipsec dpd on
ipsec dpd timers sent %[5]d silent %[6]d idle %[7]d
ipsec dpd retry interval %[8]d count %[9]d
ipsec failover hold-down %[10]d
ipsec transform-set ts
  transform 1 esp-aes128-hmac-sha
interface tunnel ipsec:bench
  virtual-router v
  tunnel source %[11]s
  tunnel destination %[2]s
  tunnel destination backup %[3]s
  tunnel transform-set ts
  tunnel local-selector 198.51.100.0 255.255.255.0
  tunnel remote-selector 203.0.113.0 255.255.255.0
ip route 203.0.113.0 255.255.255.0 ipsec:bench
`, netns, charon.SwanAddr, backupAddr, benchPSK, int(c.Sent.Seconds()), int(c.Silent.Seconds()), int(c.Idle.Seconds()),
		int(c.RetryInterval.Seconds()), c.Retries, int(c.HoldDown.Seconds()), charon.ISMAddr)
}

// ikeStatus returns the IKE status of the benchmark's tunnel.
func ikeStatus(h *harness, g *ism.Gateway) ike.TunnelStatus {
	for _, t := range g.Tunnels() {
		if t.Name == "ipsec:bench" && t.IKE != nil {
			return *t.IKE
		}
	}
	h.Fatalf("bench: no IKE status for ipsec:bench")
	return ike.TunnelStatus{}
}

// waitDeadAt waits until DPD has declared peer dead after lost, and
// returns when it did (TunnelDPD.DeadAt).
func waitDeadAt(h *harness, g *ism.Gateway, peer netip.Addr, lost time.Time, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for {
		if d := ikeStatus(h, g).DPD; d.DeadPeer == peer && d.DeadAt.After(lost) {
			return d.DeadAt
		}
		if time.Now().After(deadline) {
			h.Fatalf("bench: DPD did not declare %s dead within %v", peer, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FailoverTable prints failover results against the configured timers.
func FailoverTable(w io.Writer, c FailoverConfig, rows []FailoverResult) error {
	fmt.Fprintf(w, "DPD sent %v silent %v idle %v, retry interval %v count %d, hold-down %v; destination lost by %s; a probe every %v\n",
		c.Sent, c.Silent, c.Idle, c.RetryInterval, c.Retries, c.HoldDown, c.Loss, c.Interval)
	fmt.Fprintf(w, "detection expected at %v, target %v; traffic through the backup within %v of detection\n",
		c.ExpectedDetect(), c.TargetDetect(), TargetRestore)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tdetect s\trestore after detect s\tlost packets\tof\tIKE failover s\ttargets met\t")
	for _, r := range rows {
		met := []string{}
		if !r.MetDetect {
			met = append(met, "detect: no")
		}
		if !r.MetRestore {
			met = append(met, "restore: no")
		}
		if len(met) == 0 {
			met = append(met, "yes")
		}
		fmt.Fprintf(tw, "%d\t%.3f\t%.3f\t%d\t%d\t%.3f\t%s\t\n", r.Run, r.DetectS, r.RestoreAfterDetectS, r.LostPackets, r.ProbePackets,
			r.IKEFailoverS, strings.Join(met, ", "))
	}
	return tw.Flush()
}
