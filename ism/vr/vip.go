package vr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

// A cluster's virtual addresses (VIPs): the owner of a tunnel group adds
// the group's VIP to the interface of its transport VR on the VIP's
// network and announces it, so that the neighbours' caches (the peers',
// or their router's) move to this node at once rather than when their
// entries go stale: a gratuitous ARP request for IPv4 (RFC 5227 §3, as
// arping -U sends it), an unsolicited neighbour advertisement with the
// override flag for IPv6 (RFC 4861 §7.2.6). The kernel's arp_notify and
// ndisc_notify announce only a link that comes up or changes its
// hardware address, not a new address, so ISM sends them itself.

// VIP is a virtual address on one of the VR's links.
type VIP struct {
	Prefix netip.Prefix
	Index  uint32
	HW     net.HardwareAddr
}

// ErrNoLink says the VR has no interface on a VIP's network.
var ErrNoLink = errors.New("vr: no interface on the virtual address's network")

// AddVIP adds p to the link of the VR that has an address in p's network
// (IPv6 without duplicate address detection, so that it is usable at
// once) and announces it.
func (v *VR) AddVIP(p netip.Prefix) (VIP, error) {
	msgs, err := v.Netlink.c.Address.List()
	if err != nil {
		return VIP{}, fmt.Errorf("vr %s: %w", v.Name, err)
	}
	vip := VIP{Prefix: p}
	for _, m := range msgs {
		if m.Attributes == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(m.Attributes.Local)
		if !ok {
			a, ok = netip.AddrFromSlice(m.Attributes.Address)
		}
		if ok && a.Unmap() != p.Addr() && p.Masked().Contains(a.Unmap()) {
			vip.Index = m.Index
			break
		}
	}
	if vip.Index == 0 {
		return VIP{}, fmt.Errorf("%w: %s in virtual router %s", ErrNoLink, p.Masked(), v.Name)
	}
	l, err := v.Netlink.c.Link.Get(vip.Index)
	if err != nil {
		return VIP{}, fmt.Errorf("vr %s: link %d: %w", v.Name, vip.Index, err)
	}
	if l.Attributes != nil {
		vip.HW = l.Attributes.Address
	}
	a := p.Addr()
	m := &rtnetlink.AddressMessage{Family: family(a), PrefixLength: uint8(p.Bits()), Index: vip.Index, Scope: unix.RT_SCOPE_UNIVERSE,
		Attributes: &rtnetlink.AddressAttributes{Address: IP(a), Local: IP(a)}}
	if a.Is6() {
		m.Flags = unix.IFA_F_NODAD
	}
	if err := v.Netlink.c.Address.New(m); err != nil && !errors.Is(err, unix.EEXIST) {
		return VIP{}, fmt.Errorf("vr %s: add %s: %w", v.Name, p, err)
	}
	return vip, v.Announce(vip)
}

// DelVIP removes a VIP; one already gone is fine.
func (v *VR) DelVIP(vip VIP) error {
	err := v.Netlink.DelAddr(vip.Index, vip.Prefix)
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}

// Announce sends the VIP's gratuitous ARP or unsolicited neighbour
// advertisement on its link.
func (v *VR) Announce(vip VIP) error {
	if len(vip.HW) != 6 {
		return nil // no Ethernet address (a point-to-point link): nothing to announce
	}
	return v.NS.Do(func() error {
		if vip.Prefix.Addr().Is4() {
			return sendGARP(vip)
		}
		return sendUnsolicitedNA(vip)
	})
}

// sendGARP broadcasts an ARP request for the VIP from the VIP.
func sendGARP(vip VIP) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("vr: gratuitous ARP: %w", err)
	}
	defer unix.Close(fd)
	ip := vip.Prefix.Addr().As4()
	pkt := make([]byte, 28)
	binary.BigEndian.PutUint16(pkt[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(pkt[2:], 0x0800) // IPv4
	pkt[4], pkt[5] = 6, 4
	binary.BigEndian.PutUint16(pkt[6:], 1) // request
	copy(pkt[8:14], vip.HW)
	copy(pkt[14:18], ip[:])
	copy(pkt[24:28], ip[:]) // target: the VIP itself; target hardware address zero
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: int(vip.Index), Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	if err := unix.Sendto(fd, pkt, 0, to); err != nil {
		return fmt.Errorf("vr: gratuitous ARP: %w", err)
	}
	return nil
}

// sendUnsolicitedNA sends a neighbour advertisement for the VIP to all
// nodes, override set, with the link's address (RFC 4861 §4.4, §7.2.6).
func sendUnsolicitedNA(vip VIP) error {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return fmt.Errorf("vr: neighbour advertisement: %w", err)
	}
	defer unix.Close(fd)
	// Free bind: the VIP may still be settling in the kernel (an address
	// added a moment ago), and the advertisement must go out now.
	for _, o := range [][2]int{{unix.IPV6_MULTICAST_HOPS, 255}, {unix.IPV6_UNICAST_HOPS, 255}, {unix.IPV6_MULTICAST_IF, int(vip.Index)},
		{unix.IPV6_FREEBIND, 1}} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o[0], o[1]); err != nil {
			return fmt.Errorf("vr: neighbour advertisement: %w", err)
		}
	}
	src := &unix.SockaddrInet6{Addr: vip.Prefix.Addr().As16()}
	if err := unix.Bind(fd, src); err != nil {
		return fmt.Errorf("vr: neighbour advertisement from %s: %w", vip.Prefix.Addr(), err)
	}
	pkt := make([]byte, 32)
	pkt[0] = 136                               // neighbour advertisement; code and checksum 0 (the kernel sums)
	binary.BigEndian.PutUint32(pkt[4:], 1<<29) // override
	t := vip.Prefix.Addr().As16()
	copy(pkt[8:24], t[:])
	pkt[24], pkt[25] = 2, 1 // target link-layer address, 8 bytes
	copy(pkt[26:32], vip.HW)
	to := &unix.SockaddrInet6{Addr: netip.MustParseAddr("ff02::1").As16(), ZoneId: vip.Index}
	if err := unix.Sendto(fd, pkt, 0, to); err != nil {
		return fmt.Errorf("vr: neighbour advertisement: %w", err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
