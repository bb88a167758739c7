package ism

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/offload"
)

// Statistics is what `show ipsec statistics` shows: the gateway's totals.
type Statistics struct {
	Uptime    string            `json:"uptime"`
	Tunnels   int               `json:"tunnels"`
	TunnelsUp int               `json:"tunnels_up"`
	SAs       int               `json:"sas"`
	Inbound   TrafficStatus     `json:"inbound"`
	Outbound  TrafficStatus     `json:"outbound"`
	Engine    TrafficStatus     `json:"engine"`
	Gateway   map[string]uint64 `json:"gateway_drops"`
	Drivers   []string          `json:"drivers"`
	Fallbacks map[string]uint64 `json:"fallbacks"`
	IKE       *ike.Counters     `json:"ike,omitempty"`
	Traps     []string          `json:"snmp_traps,omitempty"`
}

// TransformSetStatus is what `show ipsec transform-set` shows of a set.
type TransformSetStatus struct {
	Name       string   `json:"name"`
	Transforms []string `json:"transforms"`
	Tunnels    []string `json:"tunnels"`
}

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
}

// Exec runs an operator command (everything but reload, which the daemon
// handles) and returns its text output and the data behind it for -json.
func (g *Gateway) Exec(line string) (string, any, error) {
	f := strings.Fields(line)
	var b bytes.Buffer
	switch {
	case match(f, "show", "ipsec", "tunnel", "detail"):
		ts, err := g.selectTunnels(f[4:])
		if err != nil {
			return "", nil, err
		}
		writeTunnelDetail(&b, ts)
		return b.String(), ts, nil
	case match(f, "show", "ipsec", "tunnel"):
		ts, err := g.selectTunnels(f[3:])
		if err != nil {
			return "", nil, err
		}
		writeTunnels(&b, ts)
		return b.String(), ts, nil
	case match(f, "show", "ipsec", "transform-set") && len(f) == 3:
		sets := g.transformSets()
		writeTransformSets(&b, sets)
		return b.String(), sets, nil
	case match(f, "show", "ipsec", "sa") && len(f) == 3:
		ts := g.Tunnels()
		writeSAs(&b, ts)
		var sas []SAStatus
		for _, t := range ts {
			sas = append(sas, t.SAs...)
		}
		return b.String(), sas, nil
	case match(f, "show", "ipsec", "statistics") && len(f) == 3:
		st := g.Statistics()
		writeStatistics(&b, st)
		return b.String(), st, nil
	case match(f, "show", "ike", "sa") && len(f) == 3:
		var sas []ike.IKESAStatus
		if d := g.ike.Load(); d != nil {
			sas = d.Status().IKESAs
		}
		writeIKESAs(&b, sas)
		return b.String(), sas, nil
	case match(f, "clear", "ipsec", "tunnel", "statistics"):
		n, err := g.ClearStatistics(f[4:])
		if err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("cleared the statistics of %d tunnel(s)\n", n), map[string]int{"cleared": n}, nil
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

// selectTunnels returns the named tunnels ("ipsec:" optional), or all.
func (g *Gateway) selectTunnels(names []string) ([]TunnelStatus, error) {
	all := g.Tunnels()
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

func (g *Gateway) transformSets() []TransformSetStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []TransformSetStatus
	for _, s := range g.cfg.TransformSets {
		st := TransformSetStatus{Name: s.Name}
		for _, t := range s.Transforms {
			st.Transforms = append(st.Transforms, t.Name())
		}
		for _, t := range g.cfg.Tunnels {
			if t.TransformSet.Name == s.Name {
				st.Tunnels = append(st.Tunnels, t.String())
			}
		}
		out = append(out, st)
	}
	return out
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

// Statistics returns the gateway's totals.
func (g *Gateway) Statistics() Statistics {
	ts := g.Tunnels()
	st := Statistics{Uptime: time.Since(g.started).Round(time.Second).String(), Tunnels: len(ts),
		Inbound: TrafficStatus{Drops: map[string]uint64{}}, Outbound: TrafficStatus{Drops: map[string]uint64{}}}
	for _, t := range ts {
		if t.State == "up" {
			st.TunnelsUp++
		}
		st.SAs += len(t.SAs)
		addTraffic(&st.Inbound, t.Inbound)
		addTraffic(&st.Outbound, t.Outbound)
	}
	ev := g.eng.Counters()
	st.Engine = TrafficStatus{Packets: ev.Packets, Bytes: ev.Bytes, Drops: ev.DropMap()}
	gv := g.counters.Snapshot()
	st.Gateway = gv.DropMap()
	st.Drivers = []string{g.fb.Name()}
	for _, d := range g.drivers {
		st.Drivers = append(st.Drivers, d.Name())
	}
	st.Fallbacks = g.eng.Fallbacks()
	g.x.fallbacks(st.Fallbacks)
	if d := g.ike.Load(); d != nil {
		c := d.Status().Counters
		st.IKE = &c
	}
	for _, r := range g.traps.Load().Stats() {
		st.Traps = append(st.Traps, r.String())
	}
	return st
}

func addTraffic(a *TrafficStatus, b TrafficStatus) {
	a.Packets += b.Packets
	a.Bytes += b.Bytes
	for k, v := range b.Drops {
		a.Drops[k] += v
	}
}

func writeStatistics(w io.Writer, st Statistics) {
	fmt.Fprintf(w, "Uptime %s; %d tunnels, %d up; %d SAs\n", st.Uptime, st.Tunnels, st.TunnelsUp, st.SAs)
	fmt.Fprintf(w, "Drivers: %s\n", strings.Join(st.Drivers, ", "))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "\tPackets\tBytes\tDropped")
	for _, r := range []struct {
		name string
		t    TrafficStatus
	}{{"Inbound (tunnels)", st.Inbound}, {"Outbound (tunnels)", st.Outbound}, {"Engine", st.Engine}} {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", r.name, r.t.Packets, r.t.Bytes, sum(r.t.Drops))
	}
	tw.Flush()
	fmt.Fprintln(w, "Drops by reason:")
	all := map[string]uint64{}
	for _, m := range []map[string]uint64{st.Inbound.Drops, st.Outbound.Drops, st.Gateway, onlyNoSA(st.Engine.Drops)} {
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
	if c := st.IKE; c != nil {
		fmt.Fprintf(w, "IKE: %d received, %d malformed, %d unknown SA, %d auth failures, %d no proposal chosen, %d retransmits, %d phase 1 and %d quick modes done, %d rekeys, %d dropped, %d duplicates\n",
			c.Received, c.Malformed, c.UnknownSA, c.AuthFailed, c.NoProposalChosen, c.Retransmits, c.Phase1Established, c.QuickModesCompleted, c.Rekeys, c.Dropped, c.Duplicates)
		fmt.Fprintf(w, "DPD: %d inquiries, %d acknowledged, %d answered, %d peers dead; %d failovers\n",
			c.DPDInquiries, c.DPDAcks, c.DPDAnswered, c.DPDPeersDead, c.Failovers)
	}
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

// onlyNoSA keeps the engine drops no tunnel was charged with: packets whose
// SA was not found.
func onlyNoSA(m map[string]uint64) map[string]uint64 {
	if n := m[offload.DropNoSA.String()]; n > 0 {
		return map[string]uint64{offload.DropNoSA.String(): n}
	}
	return nil
}

// ClearStatistics zeroes the named tunnels' counters (all with no names) and
// returns how many it cleared. The SAs' own counters, which their lifetimes
// count on, are kept.
func (g *Gateway) ClearStatistics(names []string) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ts []*Tunnel
	if len(names) == 0 {
		for _, t := range g.tunnels {
			ts = append(ts, t)
		}
		g.counters.Reset()
		g.eng.ResetCounters()
	}
	for _, n := range names {
		t := g.tunnels[strings.TrimPrefix(n, "ipsec:")]
		if t == nil {
			return 0, fmt.Errorf("no tunnel %s", n)
		}
		ts = append(ts, t)
	}
	for _, t := range ts {
		t.tx.Reset()
		t.rx.Reset()
	}
	return len(ts), nil
}

// writeIKESAs prints `show ike sa`.
func writeIKESAs(w io.Writer, sas []ike.IKESAStatus) {
	if len(sas) == 0 {
		fmt.Fprintln(w, "No IKE SAs")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Local\tRemote\tRemote identity\tMode\tState\tPolicy\tNAT-T\tLifetime left\tRekeys\tCookies")
	for _, s := range sas {
		role := "responder"
		if s.Initiator {
			role = "initiator"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\t%s\t%v\t%s\t%d\t%s/%s\n", s.Local, s.Remote, orDash(s.RemoteID), s.Mode, role, s.State,
			s.Policy, s.NATT, s.LifetimeLeft.Round(time.Second), s.Rekeys, s.ICookie, s.RCookie)
	}
	tw.Flush()
}
