package operator

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ism/datapath"
)

// writeChildren prints a signaled tunnel's child SAs (IKEv1's phase 2
// SAs) in `show ipsec tunnel detail`: how they stand, then each with its
// selectors, SPIs, transform, lifetime left and the counters of its SAs
// (sas, by SPI); then the negotiations this end has under way or
// waiting, and why the last one failed.
func writeChildren(w io.Writer, i *ike.TunnelStatus, sas []datapath.SAStatus) {
	if i.Version == 2 {
		fmt.Fprintf(w, "  Child SAs: %s\n", phase2Text(i))
	} else {
		fmt.Fprintf(w, "  Child SAs (phase 2): %s\n", phase2Text(i))
	}
	for _, c := range i.Children {
		fmt.Fprintf(w, "    %s to %s: %s, %s, %s left", c.Local, c.Remote, c.Transform, pfsText(c.PFSGroup), c.TimeLeft.Round(time.Second))
		if c.Rekeying {
			fmt.Fprint(w, ", rekeying")
		}
		fmt.Fprintf(w, "\n      inbound spi 0x%08x %s; outbound spi 0x%08x %s\n",
			c.InboundSPI, saCounters(sas, "inbound", c.InboundSPI), c.OutboundSPI, saCounters(sas, "outbound", c.OutboundSPI))
	}
	for _, n := range i.Negotiations {
		kind := "new child SA"
		if n.Rekey {
			kind = "rekey"
		}
		fmt.Fprintf(w, "    Negotiation (%s) %s to %s: %s", kind, n.Local, n.Remote, n.State)
		if !n.NextAttempt.IsZero() {
			fmt.Fprintf(w, ", next attempt at %s", n.NextAttempt.Format(time.TimeOnly))
		}
		fmt.Fprintf(w, ", %d attempts, %d failures", n.Attempts, n.Failures)
		if n.LastError != "" {
			fmt.Fprintf(w, ", last error: %s", n.LastError)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  Negotiations this end started: %d, failed: %d\n", i.Attempts, i.Failures)
	if i.LastError != "" {
		fmt.Fprintf(w, "  Last negotiation error: %s\n", i.LastError)
	}
}

// phase2Text says how a tunnel's child SAs stand: up, with the newest's
// transform and the rekeys, or what it waits for.
func phase2Text(i *ike.TunnelStatus) string {
	switch {
	case len(i.Children) > 0:
		s := fmt.Sprintf("up, %d child SA pair", len(i.Children))
		if len(i.Children) > 1 {
			s += "s"
		}
		if i.Transform.Valid() {
			s += fmt.Sprintf(", newest %s, %s, %s left", i.Transform, pfsText(i.PFSGroup), i.TimeLeft.Round(time.Second))
		}
		return s + fmt.Sprintf(", %d rekeys", i.Rekeys)
	case i.State == "negotiating":
		if i.QuickMode != "" {
			return "none, negotiating (" + i.QuickMode + ")"
		}
		return "none, negotiating"
	case i.Waiting == "the peer":
		return "none, waiting for the peer to start them (its destination is known only by its identity)"
	case i.Waiting == "traffic":
		if backingOff(i.Negotiations) {
			return "none, waiting for traffic after the back-off"
		}
		return "none, waiting for traffic"
	}
	return "none"
}

func backingOff(ns []ike.NegotiationStatus) bool {
	for _, n := range ns {
		if strings.HasPrefix(n.State, "backing off") {
			return true
		}
	}
	return false
}

func pfsText(group int) string {
	if group == 0 {
		return "no PFS"
	}
	return fmt.Sprintf("PFS group %d", group)
}

// saCounters says what the SA of a direction with the given SPI carried.
func saCounters(sas []datapath.SAStatus, dir string, spi uint32) string {
	id := fmt.Sprintf("0x%08x", spi)
	for _, sa := range sas {
		if sa.SPI == id && sa.Direction == dir {
			return fmt.Sprintf("%d packets, %d bytes", sa.Packets, sa.Bytes)
		}
	}
	return "(not installed)"
}
