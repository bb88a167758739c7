// Package testpkt builds IPv4 and IPv6 packets for tests: UDP datagrams and
// ICMP echo requests with patterned payloads, and checks them.
package testpkt

import (
	"encoding/binary"
	"net/netip"

	"github.com/ismgw/ism/offload/header"
)

// UDP returns an IP packet carrying a UDP datagram from src:sport to
// dst:dport with n payload bytes of a pattern seeded by seed. The family
// follows the addresses.
func UDP(src, dst netip.Addr, sport, dport uint16, n int, seed byte) []byte {
	payload := make([]byte, header.UDPMinimumSize+n)
	for i := range n {
		payload[header.UDPMinimumSize+i] = seed + byte(i)
	}
	header.UDP(payload).Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: uint16(len(payload))})
	pkt := IP(src, dst, header.ProtoUDP, payload)
	// Fill the UDP checksum over the pseudo-header (RFC 768).
	sum := pseudoSum(src, dst, header.ProtoUDP, len(payload))
	ipl := len(pkt) - len(payload)
	c := ^header.Checksum(pkt[ipl:], sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[ipl+6:], c)
	return pkt
}

// IP wraps payload in an IPv4 or IPv6 header with protocol proto.
func IP(src, dst netip.Addr, proto uint8, payload []byte) []byte {
	if src.Is4() {
		pkt := make([]byte, header.IPv4MinimumSize+len(payload))
		header.IPv4(pkt).Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), ID: 1, TTL: 64, Protocol: proto, Src: src, Dst: dst, Flags: header.IPv4FlagDF})
		copy(pkt[header.IPv4MinimumSize:], payload)
		return pkt
	}
	pkt := make([]byte, header.IPv6MinimumSize+len(payload))
	header.IPv6(pkt).Encode(&header.IPv6Fields{PayloadLength: uint16(len(payload)), NextHeader: proto, HopLimit: 64, Src: src, Dst: dst})
	copy(pkt[header.IPv6MinimumSize:], payload)
	return pkt
}

func pseudoSum(src, dst netip.Addr, proto uint8, n int) uint16 {
	var b []byte
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	b = append(b, 0, proto, byte(n>>8), byte(n))
	return header.Checksum(b, 0)
}
