package operator

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ism/datapath"
)

// VRText names a VR in show output.
func VRText(name, netns string) string {
	if netns == "" {
		return name
	}
	return fmt.Sprintf("%s (netns %s)", name, netns)
}

// writeTunnels prints `show ipsec tunnel`: a line a tunnel.
func writeTunnels(w io.Writer, ts []TunnelStatus) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Interface\tType\tState\tSource\tDestination\tTransform\tIn packets\tOut packets\tDrops")
	for _, s := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", s.Name, s.Type, s.State, s.Source, s.Destination,
			orDash(s.Transform), s.Inbound.Packets, s.Outbound.Packets, sum(s.Inbound.Drops)+sum(s.Outbound.Drops))
	}
	tw.Flush()
}

// writeTunnelDetail prints `show ipsec tunnel detail`.
func writeTunnelDetail(w io.Writer, ts []TunnelStatus) {
	for i, s := range ts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Secure IP interface %s is %s", s.Name, s.State)
		if !s.Since.IsZero() && s.Since.Unix() > 0 {
			fmt.Fprintf(w, " (since %s, %s)", s.Since.Format(time.DateTime), time.Since(s.Since).Round(time.Second))
		}
		fmt.Fprintln(w)
		if s.Reason != "" {
			fmt.Fprintf(w, "  Down because: %s\n", s.Reason)
		}
		fmt.Fprintf(w, "  Type %s, %s mode, encapsulation %s\n", s.Type, s.Mode, s.Encapsulation)
		fmt.Fprintf(w, "  Operational virtual router: %s\n", s.OperationalVR)
		fmt.Fprintf(w, "  Transport virtual router: %s\n", s.TransportVR)
		fmt.Fprintf(w, "  Interface %s, address %s, MTU %d\n", s.Interface, orDash(strings.Join(s.Addresses, ", ")), s.MTU)
		fmt.Fprintf(w, "  Tunnel source %s, destination %s", s.Source, s.Destination)
		if s.Backup != "" {
			fmt.Fprintf(w, ", backup destination %s", s.Backup)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  Local selector %s, remote selector %s\n", s.LocalSel, s.RemoteSel)
		fmt.Fprintf(w, "  Transform set %s: %s\n", s.TransformSet, strings.Join(s.Transforms, ", "))
		if s.Driver != "" {
			fmt.Fprintf(w, "  Driver %s", s.Driver)
			if s.DriverReason != "" {
				fmt.Fprintf(w, " (%s)", s.DriverReason)
			}
			fmt.Fprintln(w)
		}
		if s.Transport != "" {
			fmt.Fprintf(w, "  Transport: %s\n", s.Transport)
		}
		if s.DatapathReason != "" && s.Datapath != "xfrm" {
			fmt.Fprintf(w, "  Datapath %s: %s\n", s.Datapath, s.DatapathReason)
		}
		if s.IKE != nil {
			writeIKEDetail(w, s)
		}
		for i, l := range s.Resumed {
			if i == 0 {
				fmt.Fprintf(w, "  Checkpoint: %s\n", l)
			} else {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
		for _, sa := range s.SAs {
			fmt.Fprintf(w, "  %s SA spi %s %s, %s, sequence %d", titleCase(sa.Direction), sa.SPI, sa.Transform, sa.State, sa.Seq)
			if sa.Direction == "inbound" {
				fmt.Fprintf(w, ", replay window %d", sa.ReplayWindow)
			}
			fmt.Fprintf(w, ", lifetime %s\n", sa.Lifetime)
		}
		for _, d := range []struct {
			name string
			t    datapath.Traffic
		}{{"Inbound", s.Inbound}, {"Outbound", s.Outbound}} {
			fmt.Fprintf(w, "  %s: %d packets, %d bytes, %d dropped%s\n", d.name, d.t.Packets, d.t.Bytes, sum(d.t.Drops), dropText(d.t.Drops))
		}
	}
}

// writeSAs prints `show ipsec sa`.
func writeSAs(w io.Writer, ts []TunnelStatus) {
	for _, s := range ts {
		for _, sa := range s.SAs {
			fmt.Fprintf(w, "%s %s SA spi %s (%s) %s, %s mode, %s -> %s", sa.Tunnel, sa.Direction, sa.SPI, sa.Protocol, sa.Transform, sa.Mode, sa.Source, sa.Destination)
			if sa.UDPEncap {
				fmt.Fprint(w, ", UDP encapsulated")
			}
			fmt.Fprintf(w, "\n  state %s, driver %s", sa.State, sa.Driver)
			if sa.DriverReason != "" {
				fmt.Fprintf(w, " (%s)", sa.DriverReason)
			}
			fmt.Fprintf(w, "\n  sequence %d, esn %v", sa.Seq, sa.ESN)
			if sa.Direction == "inbound" {
				fmt.Fprintf(w, ", replay window %d", sa.ReplayWindow)
			}
			fmt.Fprintf(w, "\n  %d packets, %d bytes, %d dropped%s\n", sa.Packets, sa.Bytes, sum(sa.Drops), dropText(sa.Drops))
			fmt.Fprintf(w, "  created %s, lifetime %s\n", sa.Created.Format(time.DateTime), sa.Lifetime)
		}
	}
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// dropText lists nonzero drops as " (reason n, ...)", sorted by reason.
func dropText(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// writeDPD prints a tunnel's dead peer detection state.
func writeDPD(w io.Writer, d ike.TunnelDPD) {
	if !d.Enabled {
		fmt.Fprintln(w, "  DPD: off")
		return
	}
	fmt.Fprintf(w, "  DPD: on, peer supports it: %v, last packet sent %s, received %s, inquiries outstanding %d",
		d.PeerSupports, ago(d.LastSent), ago(d.LastReceived), d.Outstanding)
	if !d.DeadAt.IsZero() {
		fmt.Fprintf(w, ", peer %s declared dead at %s", d.DeadPeer, d.DeadAt.Format(time.DateTime))
	}
	fmt.Fprintln(w)
}

// writeFailover prints a tunnel's failover state and last switch.
func writeFailover(w io.Writer, f ike.TunnelFailover) {
	if !f.Backup.IsValid() {
		return
	}
	on := "destination"
	if f.OnBackup {
		on = "backup destination"
	}
	fmt.Fprintf(w, "  Failover: backup %s, using the %s, %d switches", f.Backup, on, f.Count)
	if f.Count > 0 {
		fmt.Fprintf(w, "; last from %s to %s at %s (%s)", f.LastFrom, f.LastTo, f.LastAt.Format(time.DateTime), f.LastReason)
		if f.InProgress {
			fmt.Fprint(w, ", negotiating")
		} else {
			fmt.Fprintf(w, ", traffic restored %s after the last packet from the old destination", f.LastDuration.Round(time.Millisecond))
		}
	}
	if f.Pending {
		fmt.Fprintf(w, "; switch held down until %s", f.HoldDownUntil.Format(time.TimeOnly))
	}
	fmt.Fprintln(w)
}

// ago prints how long ago t was, or "never".
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}
