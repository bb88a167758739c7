package operator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/offload"
)

// ErrUnknownCommand is returned by Exec for a command it does not know.
var ErrUnknownCommand = errors.New("unknown command")

// Commands lists what Exec accepts, for help texts.
var Commands = []string{
	"show ipsec tunnel [NAME]",
	"show ipsec tunnel detail [NAME]",
	"show ipsec transform-set",
	"show ipsec sa",
	"show ipsec statistics",
	"show ike sa",
	"clear ipsec tunnel statistics [NAME]",
	"show cluster",
	"cluster drain",
	"cluster undrain",
}

// Exec runs an operator command on g (everything but reload, which the
// daemon handles) and returns its text output and the data behind it for
// -json.
func Exec(g Gateway, line string) (string, any, error) {
	f := strings.Fields(line)
	var b bytes.Buffer
	if match(f, "clear", "ipsec", "tunnel", "statistics") {
		n, err := g.ClearStatistics(f[4:])
		if err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("cleared the statistics of %d tunnel(s)\n", n), map[string]int{"cleared": n}, nil
	}
	if names, ok := tunnelNames(f); ok {
		if ts, can := g.(TunnelSnapshotter); can {
			snap, err := ts.SnapshotTunnels(names)
			if err != nil {
				return "", nil, err
			}
			snap.linkIKESAs()
			if f[3] == "detail" {
				writeTunnelDetail(&b, snap.Tunnels)
			} else {
				writeTunnels(&b, snap.Tunnels)
			}
			return b.String(), snap.Tunnels, nil
		}
	}
	snap := g.Snapshot()
	snap.linkIKESAs()
	switch {
	case match(f, "show", "ipsec", "tunnel", "detail"):
		ts, err := selectTunnels(snap.Tunnels, f[4:])
		if err != nil {
			return "", nil, err
		}
		writeTunnelDetail(&b, ts)
		return b.String(), ts, nil
	case match(f, "show", "ipsec", "tunnel"):
		ts, err := selectTunnels(snap.Tunnels, f[3:])
		if err != nil {
			return "", nil, err
		}
		writeTunnels(&b, ts)
		return b.String(), ts, nil
	case match(f, "show", "ipsec", "transform-set") && len(f) == 3:
		writeTransformSets(&b, snap.TransformSets)
		return b.String(), snap.TransformSets, nil
	case match(f, "show", "ipsec", "sa") && len(f) == 3:
		writeSAs(&b, snap.Tunnels)
		var sas []datapath.SAStatus
		for _, t := range snap.Tunnels {
			sas = append(sas, t.SAs...)
		}
		return b.String(), sas, nil
	case match(f, "show", "ipsec", "statistics") && len(f) == 3:
		st := snap.Statistics()
		writeStatistics(&b, st)
		return b.String(), st, nil
	case match(f, "show", "ike", "sa") && len(f) == 3:
		sas := IKESAs(snap.IKESAs)
		writeIKESAs(&b, sas)
		return b.String(), sas, nil
	}
	return "", nil, fmt.Errorf("%w %q; commands: %s", ErrUnknownCommand, line, strings.Join(Commands, "; "))
}

func match(f []string, words ...string) bool {
	if len(f) < len(words) {
		return false
	}
	for i, w := range words {
		if f[i] != w {
			return false
		}
	}
	return true
}

// tunnelNames returns the names of `show ipsec tunnel [detail] NAME...`,
// and false for any other command or one without names.
func tunnelNames(f []string) ([]string, bool) {
	switch {
	case match(f, "show", "ipsec", "tunnel", "detail"):
		return f[4:], len(f) > 4
	case match(f, "show", "ipsec", "tunnel"):
		return f[3:], len(f) > 3
	}
	return nil, false
}

// selectTunnels returns the named tunnels ("ipsec:" optional), or all.
func selectTunnels(all []TunnelStatus, names []string) ([]TunnelStatus, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []TunnelStatus
	for _, n := range names {
		found := false
		for _, t := range all {
			if t.Name == n || t.Name == "ipsec:"+n {
				out = append(out, t)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("no tunnel %s", n)
		}
	}
	return out, nil
}

func writeTransformSets(w io.Writer, sets []TransformSetStatus) {
	for _, s := range sets {
		fmt.Fprintf(w, "Transform set %s\n", s.Name)
		for i, t := range s.Transforms {
			fmt.Fprintf(w, "  transform %d %s\n", i+1, t)
		}
		fmt.Fprintf(w, "  used by: %s\n", orDash(strings.Join(s.Tunnels, ", ")))
	}
}

func writeStatistics(w io.Writer, st Statistics) {
	fmt.Fprintf(w, "Uptime %s; %d tunnels, %d up; %d SAs\n", st.Uptime, st.Tunnels, st.TunnelsUp, st.SAs)
	fmt.Fprintf(w, "Drivers: %s\n", strings.Join(st.Drivers, ", "))
	fmt.Fprintf(w, "Dataplane workers: %d per pipeline; %d secure-interface device and %d socket pipelines running; %d bursts, %d overlapping another's crypto; at most %d lanes ran one pipeline's bursts\n",
		st.Workers, st.Pipelines.Devices, st.Pipelines.Sockets, st.Pipelines.Bursts, st.Pipelines.Overlapped, st.Pipelines.Lanes)
	for _, r := range st.Rings {
		fmt.Fprintf(w, "Ring: %s\n", r)
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "\tPackets\tBytes\tDropped")
	for _, r := range []struct {
		name string
		t    datapath.Traffic
	}{{"Inbound (tunnels)", st.Inbound}, {"Outbound (tunnels)", st.Outbound}, {"Engine", st.Engine}} {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", r.name, r.t.Packets, r.t.Bytes, sum(r.t.Drops))
	}
	tw.Flush()
	fmt.Fprintln(w, "Drops by reason:")
	all := map[string]uint64{}
	for _, m := range []map[string]uint64{st.Inbound.Drops, st.Outbound.Drops, st.Gateway, OnlyNoSA(st.Engine.Drops)} {
		for k, v := range m {
			all[k] += v
		}
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-20s %d\n", k, all[k])
	}
	writeIKEStatistics(w, st)
	for _, r := range st.Traps {
		fmt.Fprintf(w, "SNMP traps to %s\n", r)
	}
	fmt.Fprint(w, "Fallbacks to the software engine:")
	keys = keys[:0]
	for k := range st.Fallbacks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, " %s %d", k, st.Fallbacks[k])
	}
	fmt.Fprintln(w)
}

// OnlyNoSA keeps the engine drops no tunnel was charged with: packets whose
// SA was not found.
func OnlyNoSA(m map[string]uint64) map[string]uint64 {
	if n := m[offload.DropNoSA.String()]; n > 0 {
		return map[string]uint64{offload.DropNoSA.String(): n}
	}
	return nil
}
