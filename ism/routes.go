package ism

import (
	"net/netip"

	"github.com/ismgw/ism/ipsec"
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
		if t.mode == ipsec.Transport && t.dest.IsValid() {
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
		v.installed = map[netip.Prefix]installedRoute{}
		v.rules = map[netip.Prefix]uint32{}
	}
	v.mu.Unlock()
	v.owned = map[*Tunnel][]netip.Prefix{}
	v.policy = policy
	want := map[netip.Prefix]bool{}
	for _, e := range routes {
		if !want[e.prefix] {
			want[e.prefix] = true
			v.owned[e.tunnel] = append(v.owned[e.tunnel], e.prefix)
		}
	}
	defer g.syncRules(v, policy)
	for t, prefixes := range v.owned {
		g.syncPrefixes(v, t, prefixes)
	}
	for p, r := range v.installed {
		if !want[p] {
			if err := v.rt.delRoute(r.link, p, 0); err == nil {
				delete(v.installed, p)
			}
		}
	}
}

// installedRoute is a kernel route ISM installed: the link it points at
// (the VR's TUN device or a tunnel's XFRM interface), the device behind
// that index (an index can come back on another device once a link is
// gone, and the link's routes went with it), and its MTU.
type installedRoute struct {
	link  uint32
	owner any
	mtu   int
}

// syncTunnelRoutes makes the kernel routes and rules of one tunnel match
// its state, after it came up or went down: only its own routes are
// touched, so that a tunnel coming up among 10,000 costs a netlink request
// or two. The routes it owns are those the last syncRoutes found. Called
// with g.mu held.
func (g *Gateway) syncTunnelRoutes(t *Tunnel) {
	v := t.op
	if v.owned == nil {
		g.syncRoutes()
		return
	}
	g.syncPrefixes(v, t, v.owned[t])
	for _, e := range v.policy {
		if e.tunnel == t {
			g.syncRules(v, v.policy)
			break
		}
	}
}

// syncPrefixes installs or removes t's routes in v as t's state says,
// moving them when the tunnel changed datapath; only changes reach the
// kernel.
func (g *Gateway) syncPrefixes(v *vr, t *Tunnel, prefixes []netip.Prefix) {
	link, owner := t.link()
	want := installedRoute{link: link, owner: owner, mtu: int(t.mtu.Load())}
	routed := t.routed() && want.link != 0
	for _, p := range prefixes {
		have, ok := v.installed[p]
		moved := have.link != want.link || have.owner != want.owner
		if ok && (!routed || moved) {
			// A route on a link that is gone (an XFRM interface removed
			// by a reload) went with it.
			if err := v.rt.delRoute(have.link, p, 0); err != nil && !moved {
				continue
			}
			delete(v.installed, p)
			ok = false
		}
		if routed && (!ok || have != want) {
			if err := v.rt.replaceRoute(want.link, p, want.mtu, 0); err != nil {
				g.log.Warn("route", "vr", v.name, "prefix", p.String(), "tunnel", t.String(), "err", err)
				continue
			}
			v.installed[p] = want
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
			if have, ok := v.rules[e.prefix]; ok {
				if have == prio {
					continue
				}
				if err := v.rt.delRule(e.prefix, policyTable, have); err == nil {
					delete(v.rules, e.prefix)
				}
			}
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

// link is the link the tunnel's routes point at: its XFRM interface, or
// its operational VR's TUN device (index 0 when there is none yet), and
// the object behind it.
func (t *Tunnel) link() (uint32, any) {
	if p := t.xf.Load(); p != nil {
		return p.index, p
	}
	if t.op.dev == nil {
		return 0, nil
	}
	return t.op.devIndex, t.op.dev
}
