package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// PrintJSON writes v as one JSON object on a line.
func PrintJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// EngineTable prints engine results as a readable table.
func EngineTable(w io.Writer, rows []EngineResult) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	shared := false
	for _, r := range rows {
		shared = shared || r.SharedSA
	}
	head := "transform\tsize\tdir\tdriver\tcores\tMpps\tGbps\traw Gbps\tratio\tvs software\tvs crypto-perf\t"
	if shared {
		head += "one SA: 1 core Gbps\tvs one core\tCPUs used\tCPU efficiency\t"
	}
	fmt.Fprintln(tw, head)
	dash := func(v float64) string {
		if v > 0 {
			return fmt.Sprintf("%.2f", v)
		}
		return "-"
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%.3f\t%.2f\t%s\t%s\t%s\t%s\t",
			r.Transform, r.Size, r.Operation, r.Driver, r.Cores, r.PPS/1e6, r.Gbps, dash(r.RawGbps), dash(r.Ratio), dash(r.VsSoftware), dash(r.VsCryptoPerf))
		if shared {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t", dash(r.OneCoreGbps), dash(r.VsOneCore), dash(r.PipelineCPUs), dash(r.CPUEfficiency))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// PeersTable prints `ismbench tunnel -peer strongswan` results.
func PeersTable(w io.Writer, rows []PeersResult) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "transform\tIKE\tseconds\tISM-ISM Gbps\tISM-strongSwan Gbps\tstrongSwan-strongSwan Gbps\tbare Gbps\tvs strongSwan\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\tv%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.2f\t\n",
			r.Transform, r.IKEVersion, r.Seconds, r.Gbps, r.ISMStrongSwanGbps, r.StrongSwanGbps, r.BareGbps, r.VsStrongSwan)
	}
	return tw.Flush()
}

// IKETable prints an `ismbench ike` result: ISM and strongSwan side by
// side.
func IKETable(w io.Writer, r IKEResult) error {
	window := "all at once"
	if r.Window > 0 && r.Window < r.Tunnels {
		window = fmt.Sprintf("at most %d in flight", r.Window)
	}
	kind, setup, phase1, quick := "IKEv1 main mode", "phase 1 + quick mode", "phase 1s/s", "quick modes/s"
	if r.Version == 2 {
		kind, setup, phase1, quick = "IKEv2", "IKE_SA_INIT + IKE_AUTH", "IKE SAs/s", "CREATE_CHILD_SAs/s"
	}
	fmt.Fprintf(w, "%d tunnels (%s), %s PSK %s, child SA %s\n", r.Tunnels, window, kind, r.Proposal, r.ESP)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tISM\tstrongSwan\t")
	row := func(name, format string, a, b float64) {
		fmt.Fprintf(tw, "%s\t"+format+"\t"+format+"\t\n", name, a, b)
	}
	row("setups/s ("+setup+", own IKE SA)", "%.1f", r.SetupsPerS, r.StrongSwanSetupsPerS)
	row(phase1+" (same runs)", "%.1f", r.Phase1PerS, r.StrongSwanPhase1PerS)
	row("seconds to half the tunnels up", "%.2f", r.T50Seconds, r.StrongSwanT50Seconds)
	row("seconds to 90% of the tunnels up", "%.2f", r.T90Seconds, r.StrongSwanT90Seconds)
	if r.QuickModesPerS > 0 {
		row(quick+" (one shared IKE SA)", "%.1f", r.QuickModesPerS, r.StrongSwanQuickModesPerS)
	}
	row("bytes per established tunnel", "%.0f", r.BytesPerTunnel, r.StrongSwanBytesPerTunnel)
	row("initiator CPU seconds (setup run)", "%.2f", r.CPUSeconds, r.StrongSwanCPUSeconds)
	row("responder (charon) CPU seconds", "%.2f", r.ResponderCPUSeconds, r.StrongSwanResponderCPUSeconds)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "ISM: %.0f bytes per tunnel live, %.0f per configured tunnel before negotiating", r.LiveBytesPerTunnel, r.ConfiguredBytesPerTunnel)
	if r.SharedBytesPerTunnel > 0 {
		fmt.Fprintf(w, ", %.0f per tunnel over a shared IKE SA", r.SharedBytesPerTunnel)
	}
	_, err := fmt.Fprintf(w, "; %d retransmits, %d failed negotiations\n", r.Retransmits, r.Failures)
	return err
}

// TunnelTable prints `ismbench tunnel` results: ISM's rows, wireguard-go's
// when measured, and raw ESP against ESP in UDP per transform.
func TunnelTable(w io.Writer, rows []TunnelResult, cmps []EncapComparison, wg *WireGuardResult) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	head := "tunnel\ttransform\tencap\tseconds\tGbps\tbare Gbps\tratio\tCPU ns/pkt\tCPUs busy\tbare\t"
	if wg != nil {
		head += "vs wireguard-go\t"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		fmt.Fprintf(tw, "ISM\t%s\t%s\t%d\t%.3f\t%.3f\t%.3f\t%.0f\t%.2f\t%.2f\t", r.Transform, r.Encap, r.Seconds, r.Gbps, r.BareGbps, r.Ratio, r.CPUNsPerPacket, r.CPUs, r.BareCPUs)
		if wg != nil {
			fmt.Fprintf(tw, "%.2f\t", r.VsWireGuard)
		}
		fmt.Fprintln(tw)
	}
	if wg != nil {
		fmt.Fprintf(tw, "%s\tchacha20-poly1305\tudp\t%d\t%.3f\t%.3f\t%.3f\t%.0f\t%.2f\t%.2f\t1.00\t\n", wg.Peer, wg.Seconds, wg.Gbps, wg.BareGbps, wg.Ratio, wg.CPUNsPerPacket, wg.CPUs, wg.BareCPUs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range cmps {
		if c.RawVsUDP > 0 {
			fmt.Fprintf(w, "%s: raw ESP %.2f of ESP in UDP, at %.2f its CPU per packet\n", c.Transform, c.RawVsUDP, c.RawVsUDPCPU)
		}
		if c.RingVsSocket > 0 {
			fmt.Fprintf(w, "%s: raw ESP through the gateway's transport %.2f of raw sockets\n", c.Transform, c.RingVsSocket)
		}
	}
	for _, r := range rows {
		if r.Transport != "" {
			fmt.Fprintf(w, "%s %s: a sent through %s", r.Transform, r.Encap, r.Transport)
			if r.Driver != "" {
				fmt.Fprintf(w, ", crypto on driver %s", r.Driver)
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}
