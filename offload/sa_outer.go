package offload

import (
	"encoding/binary"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// buildTemplate fills in the outer header of tunnel mode (RFC 4301
// §5.1.2): addresses, protocol, TTL, UDP ports.
func (sa *SA) buildTemplate() {
	c := &sa.cfg
	proto := uint8(c.Transform.Protocol)
	if c.UDPEncap {
		proto = header.ProtoUDP
	}
	ipLen := header.IPv4MinimumSize
	if sa.ipv6 {
		ipLen = header.IPv6MinimumSize
		header.IPv6(sa.tmpl[:]).Encode(&header.IPv6Fields{NextHeader: proto, HopLimit: header.DefaultTTL, Src: c.Src, Dst: c.Dst})
	} else {
		ip := header.IPv4(sa.tmpl[:])
		ip.Encode(&header.IPv4Fields{TTL: header.DefaultTTL, Protocol: proto, Src: c.Src, Dst: c.Dst})
		binary.BigEndian.PutUint16(sa.tmpl[10:], 0) // the checksum comes per packet (EncodeFrom)
		// The words that never change: version/IHL, TTL/protocol, addresses.
		var sum uint32
		for _, o := range []int{0, 8, 12, 14, 16, 18} {
			sum += uint32(binary.BigEndian.Uint16(sa.tmpl[o:]))
		}
		sa.tmplSum = sum - uint32(ip.TOS()) // version/IHL only, TOS comes per packet
	}
	if c.UDPEncap {
		sp, dp := c.ports()
		header.UDP(sa.tmpl[ipLen:]).Encode(&header.UDPFields{SrcPort: sp, DstPort: dp})
	}
}

// outerHeaderLen returns the bytes of outer IP and UDP header the SA adds in
// tunnel mode.
func outerHeaderLen(c *SAConfig) int {
	n := header.IPv4MinimumSize
	if c.Dst.Is6() {
		n = header.IPv6MinimumSize
	}
	if c.UDPEncap {
		n += header.UDPMinimumSize
	}
	return n
}

func (c *SAConfig) ports() (src, dst uint16) {
	src, dst = c.SrcPort, c.DstPort
	if src == 0 {
		src = header.NATTPort
	}
	if dst == 0 {
		dst = header.NATTPort
	}
	return src, dst
}

// Overhead returns how many bytes encapsulating an inner packet of n bytes
// adds with transform t: the outer IP header in tunnel mode (ipv6 says which
// family), the UDP header with udp, the ESP header, IV, padding, trailer and
// ICV, or the AH header.
func Overhead(t transform.Transform, mode ipsec.Mode, ipv6, udp bool, n int) int {
	o := 0
	if mode == ipsec.Tunnel {
		o = header.IPv4MinimumSize
		if ipv6 {
			o = header.IPv6MinimumSize
		}
	}
	if t.Protocol == transform.AH {
		return o + header.AHLength(t.ICVLen(), ipv6)
	}
	if udp {
		o += header.UDPMinimumSize
	}
	ipLen := 0
	if mode == ipsec.Transport {
		ipLen = header.IPv4MinimumSize
		if ipv6 {
			ipLen = header.IPv6MinimumSize
		}
	}
	payload := n - ipLen
	bs := t.BlockSize()
	pad := (bs - (payload+header.ESPTrailerSize)%bs) % bs
	return o + header.ESPHeaderSize + t.IVLen() + pad + header.ESPTrailerSize + t.ICVLen()
}

// MaxInner returns the largest inner packet that fits a path MTU once
// encapsulated, or 0 if none does.
func MaxInner(t transform.Transform, mode ipsec.Mode, ipv6, udp bool, pathMTU int) int {
	for n := pathMTU; n > 0; n-- {
		if n+Overhead(t, mode, ipv6, udp, n) <= pathMTU {
			return n
		}
	}
	return 0
}
