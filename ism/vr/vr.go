// Package vr is ISM's virtual routers: a JUNOSe virtual router is a Linux
// network namespace, entered to open sockets and devices, with a
// route-netlink connection for its links, addresses, kernel routes and
// source-based policy rules.
package vr

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/ismgw/ism/netns"
)

// VR is a virtual router. Its name, namespace and netlink connection are
// fixed; the routes and rules it keeps (Sync, SyncTunnel) belong to one
// caller at a time, the gateway's control plane. The zero value is not
// usable (Open).
type VR struct {
	Name    string
	NS      *netns.NS
	Netlink *Netlink

	// installed and rules are the kernel routes and policy rules ISM put
	// in the VR; owned are the prefixes each tunnel routes, and policy
	// the VR's policy routes, as the last Sync found them.
	installed map[netip.Prefix]installedRoute
	rules     map[netip.Prefix]uint32
	owned     map[string][]netip.Prefix
	policy    []Entry
}

// Open opens the VR name, whose namespace is netnsName ("" the daemon's
// own).
func Open(name, netnsName string) (*VR, error) {
	ns, err := netns.Open(netnsName)
	if err != nil {
		return nil, err
	}
	nl, err := DialNetlink(ns)
	if err != nil {
		ns.Close()
		return nil, err
	}
	return &VR{Name: name, NS: ns, Netlink: nl, installed: map[netip.Prefix]installedRoute{}, rules: map[netip.Prefix]uint32{}}, nil
}

// Close closes the netlink connection and the namespace; the routes ISM
// installed stay unless Sync removed them.
func (v *VR) Close() {
	v.Netlink.Close()
	v.NS.Close()
}

// Link is what a tunnel's routes point at: a link's index in the VR and
// the device behind it, since an index can come back on another device
// once a link is gone. The zero Link is no link.
type Link struct {
	Index  uint32
	Device any
}

// Entry is one route of an operational VR: a destination prefix (or for a
// policy route a source prefix) to a tunnel.
type Entry struct {
	Prefix netip.Prefix
	Tunnel string
}

// Target is where a tunnel's routes go now: its link with the tunnel's MTU
// while it is routed, nowhere otherwise.
type Target struct {
	Link   Link
	MTU    int
	Routed bool
}

// installedRoute is a kernel route ISM installed.
type installedRoute struct {
	link Link
	mtu  int
}

// Sync makes the VR's kernel routes and policy rules match the routes and
// policy routes given, for the tunnels as target says: routed tunnels have
// their routes, with their MTU; the others have none, so that other paths
// take over. Routes of tunnels no longer listed go. The first route for a
// prefix wins. It returns what the kernel refused.
func (v *VR) Sync(routes, policy []Entry, target func(tunnel string) Target) error {
	v.owned = map[string][]netip.Prefix{}
	v.policy = policy
	want := map[netip.Prefix]bool{}
	for _, e := range routes {
		if !want[e.Prefix] {
			want[e.Prefix] = true
			v.owned[e.Tunnel] = append(v.owned[e.Tunnel], e.Prefix)
		}
	}
	var errs []error
	for t, prefixes := range v.owned {
		errs = append(errs, v.syncPrefixes(prefixes, target(t)))
	}
	for p, r := range v.installed {
		if !want[p] {
			if err := v.Netlink.delRoute(r.link.Index, p, 0); err == nil {
				delete(v.installed, p)
			}
		}
	}
	errs = append(errs, v.syncRules(target))
	return errors.Join(errs...)
}

// SyncTunnel makes the kernel routes and rules of one tunnel match target,
// after it came up or went down: only its own routes, as the last Sync
// found them, are touched, so that a tunnel coming up among 10,000 costs a
// netlink request or two.
func (v *VR) SyncTunnel(tunnel string, target func(tunnel string) Target) error {
	err := v.syncPrefixes(v.owned[tunnel], target(tunnel))
	for _, e := range v.policy {
		if e.Tunnel == tunnel {
			return errors.Join(err, v.syncRules(target))
		}
	}
	return err
}

// syncPrefixes installs or removes a tunnel's routes as its target says,
// moving them when the tunnel changed link; only changes reach the kernel.
func (v *VR) syncPrefixes(prefixes []netip.Prefix, t Target) error {
	want := installedRoute{link: t.Link, mtu: t.MTU}
	routed := t.Routed && t.Link.Index != 0
	var errs []error
	for _, p := range prefixes {
		have, ok := v.installed[p]
		moved := have.link != want.link
		if ok && (!routed || moved) {
			// A route on a link that is gone (an XFRM interface removed
			// by a reload) went with it.
			if err := v.Netlink.delRoute(have.link.Index, p, 0); err != nil && !moved {
				continue
			}
			delete(v.installed, p)
			ok = false
		}
		if routed && (!ok || have != want) {
			if err := v.Netlink.replaceRoute(want.link.Index, p, want.mtu, 0); err != nil {
				errs = append(errs, fmt.Errorf("vr %s: route %s: %w", v.Name, p, err))
				continue
			}
			v.installed[p] = want
		}
	}
	return errors.Join(errs...)
}

// syncRules points the source-based policy routes of routed tunnels at the
// policy table, whose default routes lead to the link of the policy-routed
// tunnels (the secure-interface device, where ISM picks the tunnel).
func (v *VR) syncRules(target func(tunnel string) Target) error {
	var errs []error
	if len(v.policy) > 0 {
		if l := target(v.policy[0].Tunnel).Link; l.Index != 0 {
			for _, any := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
				if err := v.Netlink.replaceRoute(l.Index, any, 0, policyTable); err != nil {
					errs = append(errs, fmt.Errorf("vr %s: policy table: %w", v.Name, err))
				}
			}
		}
	}
	want := map[netip.Prefix]bool{}
	for i, e := range v.policy {
		prio := uint32(1000 + i)
		if !target(e.Tunnel).Routed {
			continue
		}
		want[e.Prefix] = true
		if have, ok := v.rules[e.Prefix]; ok {
			if have == prio {
				continue
			}
			if err := v.Netlink.delRule(e.Prefix, policyTable, have); err == nil {
				delete(v.rules, e.Prefix)
			}
		}
		if err := v.Netlink.addRule(e.Prefix, policyTable, prio); err != nil {
			errs = append(errs, fmt.Errorf("vr %s: policy route from %s: %w", v.Name, e.Prefix, err))
			continue
		}
		v.rules[e.Prefix] = prio
	}
	for p, prio := range v.rules {
		if !want[p] {
			if err := v.Netlink.delRule(p, policyTable, prio); err == nil {
				delete(v.rules, p)
			}
		}
	}
	return errors.Join(errs...)
}
