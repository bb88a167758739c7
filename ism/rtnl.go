package ism

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// routeProtocol marks the routes and rules ISM installs (rtm_protocol), so
// that a restarted daemon finds and replaces its own and nobody else's.
const routeProtocol = 0xd4

// policyTable is the routing table the source-based policy routes of a VR
// point into; its one route sends everything to the secure interfaces'
// device, where ISM picks the tunnel.
const policyTable = 0x1500

// rtnl is a route-netlink connection in one VR. It is safe for concurrent
// use.
type rtnl struct {
	c *rtnetlink.Conn
}

func dialRtnl(ns *netns) (*rtnl, error) {
	c, err := rtnetlink.Dial(&netlink.Config{NetNS: ns.fd})
	if err != nil {
		return nil, fmt.Errorf("ism: rtnetlink in netns %q: %w", ns.name, err)
	}
	return &rtnl{c: c}, nil
}

func (r *rtnl) close() error { return r.c.Close() }

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func ipOf(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

// linkIndex returns the index of the named link.
func (r *rtnl) linkIndex(name string) (uint32, error) {
	links, err := r.c.Link.List()
	if err != nil {
		return 0, err
	}
	for _, l := range links {
		if l.Attributes != nil && l.Attributes.Name == name {
			return l.Index, nil
		}
	}
	return 0, fmt.Errorf("ism: no link %q", name)
}

// linkUp sets a link up with the given MTU.
func (r *rtnl) linkUp(index uint32, mtu uint32) error {
	return r.c.Link.Set(&rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC, Index: index, Flags: unix.IFF_UP, Change: unix.IFF_UP,
		Attributes: &rtnetlink.LinkAttributes{MTU: mtu},
	})
}

// addAddr configures p on the link; an address already there is fine.
func (r *rtnl) addAddr(index uint32, p netip.Prefix) error {
	a := p.Addr()
	err := r.c.Address.New(&rtnetlink.AddressMessage{
		Family: family(a), PrefixLength: uint8(p.Bits()), Index: index, Scope: unix.RT_SCOPE_UNIVERSE,
		Attributes: &rtnetlink.AddressAttributes{Address: ipOf(a), Local: ipOf(a)},
	})
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// delAddr removes p from the link.
func (r *rtnl) delAddr(index uint32, p netip.Prefix) error {
	a := p.Addr()
	return r.c.Address.Delete(&rtnetlink.AddressMessage{
		Family: family(a), PrefixLength: uint8(p.Bits()), Index: index,
		Attributes: &rtnetlink.AddressAttributes{Address: ipOf(a), Local: ipOf(a)},
	})
}

// addresses lists the addresses configured in the namespace.
func (r *rtnl) addresses() ([]netip.Addr, error) {
	msgs, err := r.c.Address.List()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, m := range msgs {
		if m.Attributes == nil {
			continue
		}
		ip := m.Attributes.Local
		if ip == nil {
			ip = m.Attributes.Address
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

func routeMsg(index uint32, dst netip.Prefix, mtu int, table uint32) *rtnetlink.RouteMessage {
	m := &rtnetlink.RouteMessage{
		Family: family(dst.Addr()), DstLength: uint8(dst.Bits()), Table: unix.RT_TABLE_UNSPEC,
		Protocol: routeProtocol, Scope: unix.RT_SCOPE_LINK, Type: unix.RTN_UNICAST,
		Attributes: rtnetlink.RouteAttributes{Dst: ipOf(dst.Masked().Addr()), OutIface: index, Table: table},
	}
	if mtu > 0 {
		m.Attributes.Metrics = &rtnetlink.RouteMetrics{MTU: uint32(mtu)}
	}
	return m
}

// replaceRoute installs (or replaces) a route to dst through the link, with
// a path MTU when mtu > 0, in table (0: main).
func (r *rtnl) replaceRoute(index uint32, dst netip.Prefix, mtu int, table uint32) error {
	if table == 0 {
		table = unix.RT_TABLE_MAIN
	}
	return r.c.Route.Replace(routeMsg(index, dst, mtu, table))
}

// delRoute removes a route ISM installed; a route already gone is fine.
func (r *rtnl) delRoute(index uint32, dst netip.Prefix, table uint32) error {
	if table == 0 {
		table = unix.RT_TABLE_MAIN
	}
	m := routeMsg(index, dst, 0, table)
	m.Protocol = 0 // any: the kernel's own route for an interface subnet too
	err := r.c.Route.Delete(m)
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

func ruleMsg(src netip.Prefix, table uint32, prio uint32) *rtnetlink.RuleMessage {
	ip := ipOf(src.Masked().Addr())
	proto := uint8(routeProtocol)
	return &rtnetlink.RuleMessage{
		Family: family(src.Addr()), SrcLength: uint8(src.Bits()), Table: unix.RT_TABLE_UNSPEC, Action: unix.FR_ACT_TO_TBL,
		Attributes: &rtnetlink.RuleAttributes{Src: &ip, Table: &table, Priority: &prio, Protocol: &proto},
	}
}

// addRule sends traffic from src to table.
func (r *rtnl) addRule(src netip.Prefix, table, prio uint32) error {
	err := r.c.Rule.Add(ruleMsg(src, table, prio))
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// delRule removes a rule addRule made.
func (r *rtnl) delRule(src netip.Prefix, table, prio uint32) error {
	err := r.c.Rule.Delete(ruleMsg(src, table, prio))
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// route is what the kernel would do with a packet to an address.
type route struct {
	ifindex uint32
	mtu     int // the route's MTU, or the device's
	src     netip.Addr
}

// lookup asks the kernel for the route to dst (ip route get).
func (r *rtnl) lookup(dst netip.Addr) (route, error) {
	msgs, err := r.c.Route.Get(&rtnetlink.RouteMessage{
		Family: family(dst), DstLength: uint8(dst.BitLen()),
		Attributes: rtnetlink.RouteAttributes{Dst: ipOf(dst)},
	})
	if err != nil {
		return route{}, err
	}
	if len(msgs) == 0 {
		return route{}, errors.New("no route")
	}
	m := msgs[0]
	if m.Type != unix.RTN_UNICAST && m.Type != unix.RTN_LOCAL {
		return route{}, fmt.Errorf("route type %d", m.Type)
	}
	rt := route{ifindex: m.Attributes.OutIface}
	rt.src, _ = netip.AddrFromSlice(m.Attributes.Src)
	rt.src = rt.src.Unmap()
	if m.Attributes.Metrics != nil && m.Attributes.Metrics.MTU > 0 {
		rt.mtu = int(m.Attributes.Metrics.MTU)
	} else if l, err := r.c.Link.Get(rt.ifindex); err == nil && l.Attributes != nil {
		rt.mtu = int(l.Attributes.MTU)
	}
	return rt, nil
}
