package vr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/ismgw/ism/netns"
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

// Netlink is a route-netlink connection in one VR: links, addresses, routes
// and rules. It is safe for concurrent use; the zero value is not usable
// (DialNetlink).
type Netlink struct {
	c *rtnetlink.Conn
}

// DialNetlink opens a route-netlink connection in ns.
func DialNetlink(ns *netns.NS) (*Netlink, error) {
	c, err := rtnetlink.Dial(&netlink.Config{NetNS: ns.FD()})
	if err != nil {
		return nil, fmt.Errorf("vr: rtnetlink in netns %q: %w", ns.Name(), err)
	}
	return &Netlink{c: c}, nil
}

// Close closes the connection.
func (r *Netlink) Close() error { return r.c.Close() }

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// IP converts for the net and rtnetlink APIs.
func IP(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

// LinkIndex returns the index of the named link.
func (r *Netlink) LinkIndex(name string) (uint32, error) {
	links, err := r.c.Link.List()
	if err != nil {
		return 0, err
	}
	for _, l := range links {
		if l.Attributes != nil && l.Attributes.Name == name {
			return l.Index, nil
		}
	}
	return 0, fmt.Errorf("vr: no link %q", name)
}

// LinkUp sets a link up with the given MTU.
func (r *Netlink) LinkUp(index uint32, mtu uint32) error {
	return r.c.Link.Set(&rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC, Index: index, Flags: unix.IFF_UP, Change: unix.IFF_UP,
		Attributes: &rtnetlink.LinkAttributes{MTU: mtu},
	})
}

// AddAddr configures p on the link; an address already there is fine.
func (r *Netlink) AddAddr(index uint32, p netip.Prefix) error {
	a := p.Addr()
	err := r.c.Address.New(&rtnetlink.AddressMessage{
		Family: family(a), PrefixLength: uint8(p.Bits()), Index: index, Scope: unix.RT_SCOPE_UNIVERSE,
		Attributes: &rtnetlink.AddressAttributes{Address: IP(a), Local: IP(a)},
	})
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// DelAddr removes p from the link.
func (r *Netlink) DelAddr(index uint32, p netip.Prefix) error {
	a := p.Addr()
	return r.c.Address.Delete(&rtnetlink.AddressMessage{
		Family: family(a), PrefixLength: uint8(p.Bits()), Index: index,
		Attributes: &rtnetlink.AddressAttributes{Address: IP(a), Local: IP(a)},
	})
}

// Addresses lists the addresses configured in the namespace.
func (r *Netlink) Addresses() ([]netip.Addr, error) {
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
		Attributes: rtnetlink.RouteAttributes{Dst: IP(dst.Masked().Addr()), OutIface: index, Table: table},
	}
	if mtu > 0 {
		m.Attributes.Metrics = &rtnetlink.RouteMetrics{MTU: uint32(mtu)}
	}
	return m
}

// replaceRoute installs (or replaces) a route to dst through the link, with
// a path MTU when mtu > 0, in table (0: main).
func (r *Netlink) replaceRoute(index uint32, dst netip.Prefix, mtu int, table uint32) error {
	if table == 0 {
		table = unix.RT_TABLE_MAIN
	}
	return r.c.Route.Replace(routeMsg(index, dst, mtu, table))
}

// delRoute removes a route ISM installed; a route already gone is fine.
func (r *Netlink) delRoute(index uint32, dst netip.Prefix, table uint32) error {
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
	ip := IP(src.Masked().Addr())
	proto := uint8(routeProtocol)
	return &rtnetlink.RuleMessage{
		Family: family(src.Addr()), SrcLength: uint8(src.Bits()), Table: unix.RT_TABLE_UNSPEC, Action: unix.FR_ACT_TO_TBL,
		Attributes: &rtnetlink.RuleAttributes{Src: &ip, Table: &table, Priority: &prio, Protocol: &proto},
	}
}

// addRule sends traffic from src to table.
func (r *Netlink) addRule(src netip.Prefix, table, prio uint32) error {
	err := r.c.Rule.Add(ruleMsg(src, table, prio))
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// delRule removes a rule addRule made.
func (r *Netlink) delRule(src netip.Prefix, table, prio uint32) error {
	err := r.c.Rule.Delete(ruleMsg(src, table, prio))
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// Path is what the kernel would do with a packet to an address.
type Path struct {
	Ifindex uint32
	MTU     int // the route's MTU, or the device's
	Src     netip.Addr
}

// Lookup asks the kernel for the route to dst (ip route get).
func (r *Netlink) Lookup(dst netip.Addr) (Path, error) {
	msgs, err := r.c.Route.Get(&rtnetlink.RouteMessage{
		Family: family(dst), DstLength: uint8(dst.BitLen()),
		Attributes: rtnetlink.RouteAttributes{Dst: IP(dst)},
	})
	if err != nil {
		return Path{}, err
	}
	if len(msgs) == 0 {
		return Path{}, errors.New("no route")
	}
	m := msgs[0]
	if m.Type != unix.RTN_UNICAST && m.Type != unix.RTN_LOCAL {
		return Path{}, fmt.Errorf("route type %d", m.Type)
	}
	rt := Path{Ifindex: m.Attributes.OutIface}
	rt.Src, _ = netip.AddrFromSlice(m.Attributes.Src)
	rt.Src = rt.Src.Unmap()
	if m.Attributes.Metrics != nil && m.Attributes.Metrics.MTU > 0 {
		rt.MTU = int(m.Attributes.Metrics.MTU)
	} else if l, err := r.c.Link.Get(rt.Ifindex); err == nil && l.Attributes != nil {
		rt.MTU = int(l.Attributes.MTU)
	}
	return rt, nil
}

// NewLink creates a link.
func (r *Netlink) NewLink(m *rtnetlink.LinkMessage) error { return r.c.Link.New(m) }

// SetLink changes a link.
func (r *Netlink) SetLink(m *rtnetlink.LinkMessage) error { return r.c.Link.Set(m) }

// DeleteLink removes a link.
func (r *Netlink) DeleteLink(index uint32) error { return r.c.Link.Delete(index) }
