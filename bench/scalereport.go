package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// ScaleTable prints the rows of `ismbench scale`.
func ScaleTable(w io.Writer, rows []ScaleResult) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tunnels\tIKE\tsetups/s\tvs 1,000\tt50 s\tt90 s\tt100 s\tload s\tlive B/tunnel\tRSS B/tunnel\tidle live B/tunnel\t"+
		"peer live B/tunnel\tCPU ms/setup\tpeer CPU ms/setup\tshow one ms\tretransmits\tfailures\tpings lost\t")
	for _, r := range rows {
		vs := "-"
		if r.Vs1000 > 0 {
			vs = fmt.Sprintf("%.2f", r.Vs1000)
		}
		fmt.Fprintf(tw, "%d\tv%d\t%.0f\t%s\t%.1f\t%.1f\t%.1f\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.1f\t%d\t%d\t%d/%d\t\n",
			r.Tunnels, r.IKEVersion, r.SetupsPerS, vs, r.T50Seconds, r.T90Seconds, r.T100Seconds, r.LoadSeconds,
			r.LiveBytesPerTunnel, r.RSSBytesPerTunnel, r.ConfiguredLiveBytesPerTunnel, r.PeerLiveBytesPerTunnel,
			1000*r.CPUSecondsPerSetup, 1000*r.PeerCPUSecondsPerSetup, 1000*r.ShowOneSeconds, r.Retransmits, r.Failures, r.PingsLost, r.PingsSent)
	}
	return tw.Flush()
}

// SoakTable prints the result of `ismbench soak`.
func SoakTable(w io.Writer, r SoakResult) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, row := range [][2]string{
		{"tunnels", fmt.Sprintf("%d (IKEv%d)", r.Tunnels, r.IKEVersion)},
		{"duration", fmt.Sprintf("%.0f s, SA lifetime %.0f s", r.DurationS, r.LifetimeS)},
		{"rekeys", fmt.Sprintf("%d (%.1f/s)", r.Rekeys, r.RekeysPerS)},
		{"reloads", fmt.Sprintf("%d (%d tunnels added, %d removed)", r.Reloads, r.Added, r.Removed)},
		{"peer restarts", fmt.Sprintf("%d (probes back after %.1f s)", r.PeerRestarts, r.RestartGapS)},
		{"probes lost", fmt.Sprintf("%d of %d (%d more during the restart); longest loss %.1f s", r.LostPings, r.ProbesSent, r.LostPingsRestart, r.LongestLossS)},
		{"heap slope", fmt.Sprintf("%.0f B/min (peer %.0f B/min)", r.HeapSlopeBytesPerMin, r.PeerHeapSlopeBytesPerMin)},
		{"goroutine slope", fmt.Sprintf("%.2f/min", r.GoroutineSlopePerMin)},
		{"file descriptors", fmt.Sprintf("%d at the start, %d at the end", r.FDsStart, r.FDsEnd)},
		{"routes", fmt.Sprintf("%d of %d", r.RoutesHave, r.RoutesWant)},
		{"rules", fmt.Sprintf("%d of %d", r.RulesHave, r.RulesWant)},
		{"leaked SAs", fmt.Sprint(r.LeakedSAs)},
		{"tunnels down at the end", fmt.Sprintf("%d on the initiator, %d on the responder", r.TunnelsDownAtEnd, r.PeerTunnelsDownAtEnd)},
		{"quick modes refused as malformed", fmt.Sprint(r.MalformedQuickModes)},
		{"failures, retransmits", fmt.Sprintf("%d, %d", r.Failures, r.Retransmits)},
		{"data path drops", fmt.Sprintf("initiator %s; responder %s", dropList(r.Drops), dropList(r.PeerDrops))},
		{"kernel drops", dropList(r.KernelDrops)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

// dropList is "reason N, reason N" in the reasons' order, or "none".
func dropList(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(out, ", ")
}
