package config

import (
	"fmt"
	"net/netip"
	"slices"
)

// Host answers what Parse cannot know: the addresses configured on the
// machine. The daemon implements it with rtnetlink.
type Host interface {
	// Addresses returns the addresses configured on the interfaces of the
	// network namespace netns; "" is the daemon's own namespace.
	Addresses(netns string) ([]netip.Addr, error)
}

// CheckHost is the second stage of validation: every tunnel source must be
// an address configured in the tunnel's transport VR, but for tunnels of a
// cluster group, whose source is the group's virtual address: that must
// have an address of its network beside it. It returns every
// problem as Error values joined with errors.Join, or nil.
func (c *Config) CheckHost(h Host) error {
	errs := errorList{file: c.File}
	type result struct {
		addrs []netip.Addr
		err   error
	}
	byNetns := map[string]result{}
	for _, t := range c.Tunnels {
		vr := t.TransportVR
		r, seen := byNetns[vr.Netns]
		if !seen {
			r.addrs, r.err = h.Addresses(vr.Netns)
			byNetns[vr.Netns] = r
		}
		line := int(t.sourceLine)
		if line == 0 {
			line = t.Pos.Line
		}
		where := fmt.Sprintf("virtual-router %s", vr.Name)
		if vr.Netns != "" {
			where += fmt.Sprintf(" (netns %s)", vr.Netns)
		}
		if r.err != nil {
			errs.add(line, "tunnel source: cannot list the addresses of %s: %v", where, r.err)
			continue
		}
		if g := c.Group(t.Name); g != nil {
			// The VIP comes and goes with the group's ownership; the
			// network it goes on must be there.
			if !slices.ContainsFunc(r.addrs, func(a netip.Addr) bool { return a != g.VIP.Addr() && g.VIP.Masked().Contains(a.WithZone("").Unmap()) }) {
				errs.add(line, "tunnel source: the virtual address %s of cluster group %s needs an address of %s in %s to go beside", g.VIP.Addr(), g.Name, where, g.VIP.Masked())
			}
			continue
		}
		if !hasAddr(r.addrs, t.TunnelSource) {
			errs.add(line, "tunnel source: %s is not an address of %s", t.TunnelSource, where)
		}
	}
	return errs.err()
}

func hasAddr(addrs []netip.Addr, a netip.Addr) bool {
	for _, b := range addrs {
		if b.WithZone("").Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}
