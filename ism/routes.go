package ism

import (
	"net/netip"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/lookaside"
	"github.com/ismgw/ism/ism/vr"
)

// syncRoutes makes every operational VR's routes match the tunnels' states
// and the configuration: the kernel's routes and rules (up tunnels have
// their routes, with the tunnel's MTU, on the link of their datapath; down
// tunnels have none, so that other paths take over, as the seed says on
// DPD), and the lookaside datapath's view of them. A VR's routes are the
// subnets of its secure interfaces, a transport-mode tunnel's peer, and
// the configured routes and policy routes. g.mu is held.
func (g *Gateway) syncRoutes() {
	byVR := map[*vr.VR][]vr.Entry{}
	policy := map[*vr.VR][]vr.Entry{}
	for _, t := range g.tunnels {
		for _, p := range t.d.Addresses {
			byVR[t.op()] = append(byVR[t.op()], vr.Entry{Prefix: p.Masked(), Tunnel: t.Name})
		}
		if d := t.destination(); t.d.Mode == ipsec.Transport && d.IsValid() {
			byVR[t.op()] = append(byVR[t.op()], vr.Entry{Prefix: netip.PrefixFrom(d, d.BitLen()), Tunnel: t.Name})
		}
	}
	if g.cfg != nil {
		for _, r := range g.cfg.Routes {
			if t := g.tunnels[r.Tunnel]; t != nil {
				byVR[t.op()] = append(byVR[t.op()], vr.Entry{Prefix: r.Prefix.Masked(), Tunnel: t.Name})
			}
		}
		for _, r := range g.cfg.PolicyRoutes {
			if t := g.tunnels[r.Tunnel]; t != nil {
				policy[t.op()] = append(policy[t.op()], vr.Entry{Prefix: r.Source.Masked(), Tunnel: t.Name})
			}
		}
	}
	for _, v := range g.vrs {
		if err := v.Sync(byVR[v], policy[v], g.target); err != nil {
			g.log.Warn("routes", "vr", v.Name, "err", err)
		}
		g.look.SetRoutes(v, g.lookasideRoutes(byVR[v]), g.lookasideRoutes(policy[v]))
	}
}

func (g *Gateway) lookasideRoutes(es []vr.Entry) []lookaside.Route {
	out := make([]lookaside.Route, 0, len(es))
	for _, e := range es {
		out = append(out, lookaside.Route{Prefix: e.Prefix, Tunnel: g.tunnels[e.Tunnel].d})
	}
	return out
}

// syncTunnelRoutes makes the kernel routes and rules of one tunnel match
// its state, after it came up or went down: only its own routes are
// touched, so that a tunnel coming up among 10,000 costs a netlink request
// or two. g.mu is held.
func (g *Gateway) syncTunnelRoutes(t *Tunnel) {
	if g.tunnels[t.Name] != t {
		return // rebuilt or removed meanwhile
	}
	if err := t.op().SyncTunnel(t.Name, g.target); err != nil {
		g.log.Warn("routes", "tunnel", t.String(), "err", err)
	}
}

// target is where a tunnel's routes go now. g.mu is held.
func (g *Gateway) target(name string) vr.Target {
	t := g.tunnels[name]
	if t == nil {
		return vr.Target{}
	}
	var link vr.Link
	if p := t.currentPath(); p != nil {
		link = p.Link()
	}
	return vr.Target{Link: link, MTU: int(t.d.MTU.Load()), Routed: t.routed()}
}
