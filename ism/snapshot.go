package ism

import (
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/operator"
)

var _ operator.Gateway = (*Gateway)(nil)

// Snapshot returns the gateway's state for the operator's commands.
func (g *Gateway) Snapshot() operator.Snapshot {
	g.mu.Lock()
	ts := make([]*Tunnel, 0, len(g.tunnels))
	for _, t := range g.tunnels {
		ts = append(ts, t)
	}
	var sets []operator.TransformSetStatus
	if g.cfg != nil {
		for _, s := range g.cfg.TransformSets {
			st := operator.TransformSetStatus{Name: s.Name}
			for _, t := range s.Transforms {
				st.Transforms = append(st.Transforms, t.Name())
			}
			for _, t := range g.cfg.Tunnels {
				if t.TransformSet.Name == s.Name {
					st.Tunnels = append(st.Tunnels, t.String())
				}
			}
			sets = append(sets, st)
		}
	}
	g.mu.Unlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	snap := operator.Snapshot{TransformSets: sets, Uptime: g.clock.Now().Sub(g.started),
		Datapaths: datapath.Stats{Fallbacks: map[string]uint64{}}}
	ikeByName := map[string]ike.TunnelStatus{}
	if d := g.daemon(); d != nil {
		st := d.Status()
		for _, s := range st.Tunnels {
			ikeByName[s.Name] = s
		}
		snap.IKE, snap.IKESAs, snap.IKEVersions = &st.Counters, st.IKESAs, st.ByVersion
	}
	for _, t := range ts {
		s := g.tunnelStatus(t)
		if is, ok := ikeByName[t.Name]; ok {
			s.IKE = &is
		}
		snap.Tunnels = append(snap.Tunnels, s)
	}
	for _, dp := range g.dps {
		st := dp.Stats()
		snap.Datapaths.Engine.Add(st.Engine)
		snap.Datapaths.Drivers = append(snap.Datapaths.Drivers, st.Drivers...)
		snap.Datapaths.Buffers += st.Buffers
		snap.Datapaths.Workers = max(snap.Datapaths.Workers, st.Workers)
		snap.Datapaths.Pipelines.Devices += st.Pipelines.Devices
		snap.Datapaths.Pipelines.Sockets += st.Pipelines.Sockets
		snap.Datapaths.Pipelines.Bursts += st.Pipelines.Bursts
		snap.Datapaths.Pipelines.Overlapped += st.Pipelines.Overlapped
		snap.Datapaths.Pipelines.BufferBytes += st.Pipelines.BufferBytes
		snap.Datapaths.Pipelines.ReceiveBufferBytes += st.Pipelines.ReceiveBufferBytes
		snap.Datapaths.Pipelines.Lanes = max(snap.Datapaths.Pipelines.Lanes, st.Pipelines.Lanes)
		if st.Drops != nil {
			snap.Datapaths.Drops = st.Drops
		}
		maps.Copy(snap.Datapaths.Fallbacks, st.Fallbacks)
	}
	for k, v := range g.fallbacks {
		snap.Datapaths.Fallbacks[k] = v.Load()
	}
	snap.Datapaths.Fallbacks["ring-unavailable"] = g.eps.RingUnavailable()
	for _, r := range g.eps.Rings() {
		snap.Rings = append(snap.Rings, r.String())
	}
	for _, r := range g.traps.Load().Stats() {
		snap.Traps = append(snap.Traps, r.String())
	}
	return snap
}

// SnapshotTunnels returns the named tunnels' state and the IKE SAs with
// their peers (operator.TunnelSnapshotter), building theirs only: show
// for one tunnel among 10,000 costs one tunnel's status.
func (g *Gateway) SnapshotTunnels(names []string) (operator.Snapshot, error) {
	snap := operator.Snapshot{Uptime: g.clock.Now().Sub(g.started)}
	d := g.daemon()
	one, _ := d.(ike.TunnelStatuser)
	var all *ike.Status // from a daemon that describes every tunnel at once
	for _, n := range names {
		t := g.tunnelByName(strings.TrimPrefix(n, "ipsec:"))
		if t == nil {
			return operator.Snapshot{}, fmt.Errorf("no tunnel %s", n)
		}
		s := g.tunnelStatus(t)
		switch {
		case one != nil:
			if is, sas, ok := one.TunnelStatus(t.Name); ok {
				s.IKE = &is
				snap.IKESAs = append(snap.IKESAs, sas...)
			}
		case d != nil:
			if all == nil {
				st := d.Status()
				all = &st
				snap.IKESAs = st.IKESAs
			}
			for i := range all.Tunnels {
				if all.Tunnels[i].Name == t.Name {
					s.IKE = &all.Tunnels[i]
				}
			}
		}
		snap.Tunnels = append(snap.Tunnels, s)
	}
	return snap, nil
}

// tunnelStatus is what show says of a tunnel.
func (g *Gateway) tunnelStatus(t *Tunnel) operator.TunnelStatus {
	c := t.conf()
	s := operator.TunnelStatus{
		Name: t.String(), Type: c.Type.String(), Mode: c.Mode.String(), State: "down", Reason: t.Reason(),
		Since: time.Unix(0, t.since.Load()), OperationalVR: operator.VRText(c.OperationalVR.Name, c.OperationalVR.Netns),
		TransportVR: operator.VRText(c.TransportVR.Name, c.TransportVR.Netns), MTU: int(t.d.MTU.Load()),
		Source: c.TunnelSource.String(), Destination: c.TunnelDestination.String(), Backup: c.BackupDestination.String(),
		LocalSel: t.d.Local.String(), RemoteSel: t.d.Remote.String(), TransformSet: c.TransformSet.Name,
		Inbound: datapath.TrafficOf(&t.d.RX), Outbound: datapath.TrafficOf(&t.d.TX),
	}
	if t.Up() {
		s.State = "up"
	}
	if t.standby {
		s.State = "standby"
	}
	s.Resumed = t.resumedLines()
	for _, p := range t.d.Addresses {
		s.Addresses = append(s.Addresses, p.String())
	}
	s.Encapsulation = "ESP"
	if c.TransformSet.Protocol() == 51 {
		s.Encapsulation = "AH"
	}
	if t.d.UDPPort != 0 {
		s.Encapsulation += fmt.Sprintf(" in UDP %d", c.UDPEncapPort)
	}
	for _, tr := range c.TransformSet.Transforms {
		s.Transforms = append(s.Transforms, tr.Name())
	}
	if tr := t.transform(); tr.Valid() {
		s.Transform = tr.Name()
	}
	t.mu.Lock()
	p, dp, why := t.path, g.dps[t.dp], t.dpWhy
	t.mu.Unlock()
	s.Datapath, s.DatapathReason = dp.Name(), why
	if p == nil {
		return s
	}
	ps := p.Status()
	s.Datapath, s.Interface, s.Driver, s.DriverReason, s.SAs = ps.Datapath, ps.Interface, ps.Driver, ps.DriverReason, ps.SAs
	s.Transport = ps.Transport
	if ps.Reason != "" {
		s.DatapathReason = ps.Reason
	}
	s.Inbound.Add(ps.In)
	s.Outbound.Add(ps.Out)
	return s
}

// ClearStatistics zeroes the named tunnels' counters (all, and the
// datapaths', with no names) and returns how many it cleared. The SAs' own
// counters, which their lifetimes count on, are kept.
func (g *Gateway) ClearStatistics(names []string) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ts []*Tunnel
	if len(names) == 0 {
		for _, t := range g.tunnels {
			ts = append(ts, t)
		}
		for _, dp := range g.dps {
			dp.ResetStats()
		}
	}
	for _, n := range names {
		t := g.tunnels[strings.TrimPrefix(n, "ipsec:")]
		if t == nil {
			return 0, fmt.Errorf("no tunnel %s", n)
		}
		ts = append(ts, t)
	}
	for _, t := range ts {
		t.d.TX.Reset()
		t.d.RX.Reset()
	}
	return len(ts), nil
}

// Exec runs an operator command (operator.Exec).
func (g *Gateway) Exec(line string) (string, any, error) { return operator.Exec(g, line) }

// Statistics returns the gateway's totals (`show ipsec statistics`).
func (g *Gateway) Statistics() operator.Statistics {
	s := g.Snapshot()
	return s.Statistics()
}

// Tunnels returns the status of every tunnel, by name.
func (g *Gateway) Tunnels() []operator.TunnelStatus { return g.Snapshot().Tunnels }
