package ism

import (
	"net/netip"

	"github.com/ismgw/ism/offload"
)

// routeEntry is a route ISM keeps in an operational VR: a prefix to a
// secure interface, from the configuration or from the interface's own
// subnet.
type routeEntry struct {
	prefix netip.Prefix
	tunnel *Tunnel
}

// syncRoutes rebuilds every operational VR's fib and makes its kernel routes
// and rules match the tunnels' states: up tunnels have their routes, with
// the tunnel's MTU; down tunnels have none, so that other paths take over
// (the seed, on DPD). Called with g.mu held.
func (g *Gateway) syncRoutes() {
	byVR := map[*vr][]routeEntry{}
	policy := map[*vr][]routeEntry{}
	for _, t := range g.tunnels {
		for _, p := range []netip.Prefix{t.cfg.Address, t.cfg.Address6} {
			if p.IsValid() {
				byVR[t.op] = append(byVR[t.op], routeEntry{p.Masked(), t})
			}
		}
		if t.mode == offload.Transport && t.dest.IsValid() {
			byVR[t.op] = append(byVR[t.op], routeEntry{netip.PrefixFrom(t.dest, t.dest.BitLen()), t})
		}
	}
	for _, r := range g.cfg.Routes {
		if t := g.tunnels[r.Tunnel]; t != nil {
			byVR[t.op] = append(byVR[t.op], routeEntry{r.Prefix.Masked(), t})
		}
	}
	for _, r := range g.cfg.PolicyRoutes {
		if t := g.tunnels[r.Tunnel]; t != nil {
			policy[t.op] = append(policy[t.op], routeEntry{r.Source.Masked(), t})
		}
	}
	for _, v := range g.vrs {
		f := &fib{}
		for _, e := range byVR[v] {
			f.byDst.add(e.prefix, e.tunnel)
		}
		for _, e := range policy[v] {
			f.bySrc.add(e.prefix, e.tunnel)
		}
		v.fib.Store(f)
		g.syncKernel(v, byVR[v], policy[v])
	}
}

// syncKernel installs the VR's routes for up tunnels and removes the rest,
// including those of tunnels no longer configured.
func (g *Gateway) syncKernel(v *vr, routes, policy []routeEntry) {
	v.mu.Lock()
	if v.installed == nil {
		v.installed = map[netip.Prefix]uint32{}
		v.rules = map[netip.Prefix]uint32{}
	}
	v.mu.Unlock()
	defer g.syncRules(v, policy)
	want := map[netip.Prefix]*Tunnel{}
	for _, e := range routes {
		if _, dup := want[e.prefix]; !dup {
			want[e.prefix] = e.tunnel
		}
	}
	for p, t := range want {
		index := t.linkIndex()
		if old, ok := v.installed[p]; ok && old != index {
			// The tunnel changed datapath: the route moves.
			if err := v.rt.delRoute(old, p, 0); err == nil {
				delete(v.installed, p)
			}
		}
		if index == 0 {
			continue
		}
		if t.routed() {
			if err := v.rt.replaceRoute(index, p, int(t.mtu.Load()), 0); err != nil {
				g.log.Warn("route", "vr", v.name, "prefix", p.String(), "tunnel", t.String(), "err", err)
				continue
			}
			v.installed[p] = index
		} else if err := v.rt.delRoute(index, p, 0); err == nil {
			delete(v.installed, p)
		}
	}
	for p, index := range v.installed {
		if _, ok := want[p]; !ok {
			if err := v.rt.delRoute(index, p, 0); err == nil {
				delete(v.installed, p)
			}
		}
	}
}

// syncRules points the source-based policy routes of up tunnels at the
// policy table, whose default routes lead to the secure-interface device.
func (g *Gateway) syncRules(v *vr, policy []routeEntry) {
	if len(policy) > 0 && v.dev != nil {
		for _, any := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
			if err := v.rt.replaceRoute(v.devIndex, any, 0, policyTable); err != nil {
				g.log.Warn("policy table", "vr", v.name, "err", err)
			}
		}
	}
	want := map[netip.Prefix]bool{}
	for i, e := range policy {
		prio := uint32(1000 + i)
		if e.tunnel.routed() {
			want[e.prefix] = true
			if err := v.rt.addRule(e.prefix, policyTable, prio); err != nil {
				g.log.Warn("policy route", "vr", v.name, "source", e.prefix.String(), "err", err)
				continue
			}
			v.rules[e.prefix] = prio
		}
	}
	for p, prio := range v.rules {
		if !want[p] {
			if err := v.rt.delRule(p, policyTable, prio); err == nil {
				delete(v.rules, p)
			}
		}
	}
}

// linkIndex is the link the tunnel's routes point at: its XFRM interface,
// or its operational VR's TUN device (0 when there is none yet).
func (t *Tunnel) linkIndex() uint32 {
	if p := t.xf.Load(); p != nil {
		return p.index
	}
	if t.op.dev == nil {
		return 0
	}
	return t.op.devIndex
}
