package bench

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ismgw/ism/internal/netlab"
)

// `ismbench restart` (issue 11, §1): gateway A (an ismd process with its
// state file, checkpointed every 200 ms) and its peer B with a manual
// tunnel and two signaled ones (IKEv1, IKEv2), probes from B through each
// to an echo server in A's namespace; A is killed with SIGKILL and started
// again with the same configuration at once. The benchmark measures the
// time from the restart to the first probe answered through each tunnel
// (resume_s, the longest), the probes lost, the IKE SAs B set up after the
// kill and the packets B dropped as replays.

// RestartConfig is what `ismbench restart` runs with.
type RestartConfig struct {
	Checkpoint time.Duration // checkpoint interval
	Interval   time.Duration // between two probes of a tunnel
}

// DefaultRestartConfig: checkpoints every 200 ms, 10 ms probes.
var DefaultRestartConfig = RestartConfig{Checkpoint: 200 * time.Millisecond, Interval: 10 * time.Millisecond}

// TargetResume is the target for resume_s.
const TargetResume = time.Second

// RestartResult is one run.
type RestartResult struct {
	Run          int     `json:"run"`
	Tunnels      int     `json:"tunnels"`
	CheckpointMS float64 `json:"checkpoint_ms"`
	IntervalMS   float64 `json:"interval_ms"`
	// ResumeS is from the restart (ismd started again) to the first
	// probe answered, the longest over the tunnels; DownS from the kill.
	ResumeS        float64 `json:"resume_s"`
	DownS          float64 `json:"down_s"`
	LostPackets    int     `json:"lost_packets"`
	ProbePackets   int     `json:"probe_packets"`
	Renegotiations uint64  `json:"renegotiations"`
	ReplayDrops    uint64  `json:"replay_drops"`
	TargetResumeS  float64 `json:"target_resume_s"`
	Met            bool    `json:"met"`
}

// MeasureRestart runs the benchmark once.
func MeasureRestart(c RestartConfig, run int) (RestartResult, error) {
	r := RestartResult{Run: run, Tunnels: len(benchProbes), CheckpointMS: float64(c.Checkpoint) / float64(time.Millisecond),
		IntervalMS: float64(c.Interval) / float64(time.Millisecond), TargetResumeS: TargetResume.Seconds()}
	var h harness
	err := h.run(func() {
		lab := netlab.New(&h)
		aNS, bNS := lab.NS("a"), lab.NS("b")
		lab.Link(aNS, "eth0", netip.MustParsePrefix("203.0.113.1/24"), bNS, "eth0", netip.MustParsePrefix("203.0.113.50/24"))
		for _, p := range benchProbes {
			lab.MustRun(bNS, "ip", "addr", "add", p[0]+"/32", "dev", "lo")
		}
		dir := tempDir(&h)
		if err := os.WriteFile(filepath.Join(dir, "state.key"), []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
			h.Fatalf("bench: %v", err)
		}
		a := newISMD(&h, aNS, dir, "a", fmt.Sprintf("checkpoint state-directory %s/state\ncheckpoint key-file %s/state.key\n"+
			"checkpoint interval %d\n", dir, dir, c.Checkpoint.Milliseconds())+peerTunnels(true, "203.0.113.1", "203.0.113.50"))
		b := newISMD(&h, bNS, dir, "b", "checkpoint interval 0\nipsec dpd timers sent 2 silent 4 idle 3\n"+peerTunnels(false, "203.0.113.50", "203.0.113.1"))
		for _, p := range benchProbes {
			startEcho(&h, aNS, p[1], 1)
		}
		a.start()
		b.start()
		var probes []*prober
		for _, p := range benchProbes {
			probes = append(probes, startProber(&h, bNS, p[0], p[1], c.Interval))
		}
		for i, p := range probes {
			p.waitFrom(&h, "through "+benchProbes[i][1], 1, time.Time{}, 30*time.Second)
		}
		time.Sleep(2 * time.Second) // checkpoints with traffic flowing
		before := b.peerCounters()

		killed := time.Now()
		a.kill()
		started := a.start()
		var last time.Time
		for i, p := range probes {
			last = maxTime(last, p.waitFrom(&h, "through "+benchProbes[i][1]+" after the restart", 1, killed, 30*time.Second))
		}
		time.Sleep(2 * time.Second)
		for _, p := range probes {
			p.halt()
		}
		time.Sleep(300 * time.Millisecond)
		for _, p := range probes {
			l, n := p.lost()
			r.LostPackets, r.ProbePackets = r.LostPackets+l, r.ProbePackets+n
		}
		after := b.peerCounters()
		r.ResumeS, r.DownS = last.Sub(started).Seconds(), last.Sub(killed).Seconds()
		r.Renegotiations, r.ReplayDrops = after.ikeSAs-before.ikeSAs, after.replayDrops-before.replayDrops
		r.Met = last.Sub(started) <= TargetResume && r.Renegotiations == 0 && r.ReplayDrops == 0
	})
	return r, err
}

// RestartTable prints the runs.
func RestartTable(w io.Writer, rows []RestartResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\ttunnels\tcheckpoint ms\tresume s\tdown s\tlost\tof probes\trenegotiations\treplay drops\tmet\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.3f\t%.3f\t%d\t%d\t%d\t%d\t%v\t\n", r.Run, r.Tunnels, r.CheckpointMS, r.ResumeS, r.DownS,
			r.LostPackets, r.ProbePackets, r.Renegotiations, r.ReplayDrops, r.Met)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "target: resume ≤ %.0f s after the restart, no renegotiation, no replay drop\n", TargetResume.Seconds())
	return err
}
