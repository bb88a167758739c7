package ism

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/vr"
)

// Tunnel groups of a cluster (issue 11, §2). The gateway runs a group's
// tunnels only while this node owns the group: cmd/ismd's cluster node
// calls StartGroup when it wins the group and StopGroup when it loses it;
// until then the tunnels stand by, configured but without SAs, sockets or
// routes. The gateway never imports the cluster package: these methods
// are the line card's half of cluster.Gateway, which cmd/ismd adapts.

// Takeover is what StartGroup gets: the group's records, as the cluster's
// previous owner checkpointed them (none for a group never owned).
type Takeover struct {
	Group   string
	Tunnels []checkpoint.Tunnel
	// Written is when each tunnel's record was taken.
	Written map[string]time.Time
	// Policy is the margin the resumed outbound SAs jump by.
	Policy checkpoint.Policy
	// Valid reports whether this node may still send from the VIP; the
	// datapath and IKE check it before they send.
	Valid func() bool
}

// group is one cluster group on this gateway. Its fields are guarded by
// Gateway.mu, but valid, which the datapaths read.
type group struct {
	cfg    config.ClusterGroup
	active bool
	vip    vr.VIP
	tr     *vr.VR
	valid  atomic.Pointer[func() bool]
}

// may reports whether the group's tunnels may send: it runs here and its
// ownership holds.
func (grp *group) may() bool {
	f := grp.valid.Load()
	return f != nil && (*f)()
}

// never is the fence of a stopped group.
var never = func() bool { return false }

// syncGroups makes the gateway's groups those of cfg; a group removed
// while it runs here stops. g.mu is held.
func (g *Gateway) syncGroups(cfg *config.Config) {
	if g.groups == nil {
		g.groups = map[string]*group{}
	}
	keep := map[string]bool{}
	for _, gc := range cfg.Cluster.Groups {
		keep[gc.Name] = true
		if grp := g.groups[gc.Name]; grp != nil {
			grp.cfg = gc
			continue
		}
		grp := &group{cfg: gc}
		grp.valid.Store(&never)
		g.groups[gc.Name] = grp
	}
	for name, grp := range g.groups {
		if !keep[name] {
			g.releaseVIP(grp)
			delete(g.groups, name)
		}
	}
}

// groupOf returns the group of a tunnel, or nil. g.mu is held.
func (g *Gateway) groupOf(tunnel string) *group {
	for _, grp := range g.groups {
		if slices.Contains(grp.cfg.Tunnels, tunnel) {
			return grp
		}
	}
	return nil
}

// fencedAddr reports whether local is the VIP of a group that may not
// send; IKE's sends from it are refused. It takes no lock but the groups
// map's, read under g.mu by the callers' publish.
func (g *Gateway) fencedAddr(local netip.Addr) bool {
	m := g.vips.Load()
	if m == nil {
		return false
	}
	grp, ok := (*m)[local]
	return ok && !grp.may()
}

// publishVIPs makes the VIPs visible to fencedAddr. g.mu is held.
func (g *Gateway) publishVIPs() {
	m := map[netip.Addr]*group{}
	for _, grp := range g.groups {
		m[grp.cfg.VIP.Addr()] = grp
	}
	g.vips.Store(&m)
}

// errFenced refuses a send from the VIP of a group this node no longer
// owns.
var errFenced = errors.New("the cluster group's VIP is fenced")

// ErrNoGroup says the configuration has no such tunnel group.
var ErrNoGroup = errors.New("ism: no such cluster group")

// StartGroup makes this node the group's owner: it adds the VIP to the
// transport VR and announces it, builds the group's tunnels resuming from
// tk's records (manual SAs past their margins, signaled ones with their IKE
// SAs, which the IKE daemon imports), and lets them send while tk.Valid
// holds. A tunnel that cannot resume starts afresh (signaled: negotiates
// at once).
func (g *Gateway) StartGroup(ctx context.Context, tk Takeover) error {
	g.mu.Lock()
	grp := g.groups[tk.Group]
	if grp == nil || g.closing.Load() {
		g.mu.Unlock()
		return fmt.Errorf("%w %q", ErrNoGroup, tk.Group)
	}
	valid := tk.Valid
	if valid == nil {
		valid = func() bool { return true }
	}
	grp.valid.Store(&valid)
	tr, err := g.vr(grp.cfg.TransportVR)
	if err == nil {
		grp.tr = tr
		grp.vip, err = tr.AddVIP(grp.cfg.VIP)
	}
	if err != nil {
		grp.valid.Store(&never)
		g.mu.Unlock()
		return fmt.Errorf("ism: group %s: %w", tk.Group, err)
	}
	grp.active = true
	pol := tk.Policy
	g.pending = newResumeSet(tk.Tunnels, func(n string) time.Time { return tk.Written[n] }, pol)
	g.rebuildGroup(grp)
	pend := g.pending
	g.pending = nil
	g.mu.Unlock()
	g.resumeSignaled(pend)
	pend.zero()
	g.log.Info("cluster group started", "group", tk.Group, "vip", grp.cfg.VIP.String(), "tunnels", len(grp.cfg.Tunnels))
	return ctx.Err()
}

// StopGroup ends this node's ownership of a group at once: nothing more
// leaves the VIP (the fence closes before anything else), the IKE daemon
// forgets the group's IKE SAs without a word to the peers (another node
// carries them on), the tunnels go back to standby and the VIP goes. It
// never waits on the network.
func (g *Gateway) StopGroup(name, why string) {
	g.mu.Lock()
	grp := g.groups[name]
	g.mu.Unlock()
	if grp == nil {
		return
	}
	grp.valid.Store(&never)
	if exp, ok := g.daemon().(ike.Exporter); ok {
		exp.Forget(func(t string) bool { return slices.Contains(grp.cfg.Tunnels, t) })
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !grp.active {
		return
	}
	grp.active = false
	g.rebuildGroup(grp)
	g.releaseVIP(grp)
	g.log.Warn("cluster group stopped", "group", name, "why", why)
}

// rebuildGroup builds the group's tunnels again: running while it is
// active, standing by otherwise. g.mu is held.
func (g *Gateway) rebuildGroup(grp *group) {
	for _, name := range grp.cfg.Tunnels {
		t := g.tunnels[name]
		if t == nil {
			continue
		}
		g.teardown(t)
		g.tunnels[name] = g.setup(t.conf(), t.op, t.tr, g.cfg)
	}
	g.publish()
	g.syncRoutes()
}

// releaseVIP removes a group's VIP from its transport VR. g.mu is held.
func (g *Gateway) releaseVIP(grp *group) {
	if grp.tr == nil || grp.vip.Index == 0 {
		return
	}
	if err := grp.tr.DelVIP(grp.vip); err != nil {
		g.log.Warn("cannot remove a group's VIP", "group", grp.cfg.Name, "vip", grp.cfg.VIP.String(), "err", err)
	}
	grp.vip = vr.VIP{}
}

// ClusterOwnership reports a change of this node's ownership of a group
// with the cluster-ownership trap: event "acquired" or "stopped", reason
// how or why.
func (g *Gateway) ClusterOwnership(group, node, event, reason string) {
	g.traps.Load().ClusterOwnership(group, node, event, reason)
}

// ExportGroup returns the state of a group's tunnels for the cluster's
// checkpoints: none unless the group runs here.
func (g *Gateway) ExportGroup(name string) ([]checkpoint.Tunnel, error) {
	g.mu.Lock()
	grp := g.groups[name]
	active := grp != nil && grp.active
	var tunnels []string
	if grp != nil {
		tunnels = slices.Clone(grp.cfg.Tunnels)
	}
	g.mu.Unlock()
	if !active {
		return nil, nil
	}
	return g.Checkpoint(func(t string) bool { return slices.Contains(tunnels, t) })
}

// CheckpointLocal returns the state of the tunnels outside cluster groups,
// for the daemon's state file.
func (g *Gateway) CheckpointLocal() ([]checkpoint.Tunnel, error) {
	g.mu.Lock()
	inGroup := map[string]bool{}
	for _, grp := range g.groups {
		for _, t := range grp.cfg.Tunnels {
			inGroup[t] = true
		}
	}
	g.mu.Unlock()
	return g.Checkpoint(func(t string) bool { return !inGroup[t] })
}
