package header

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers the data path uses.
const (
	ProtoHopByHop   = 0
	ProtoIPv4       = 4
	ProtoTCP        = 6
	ProtoUDP        = 17
	ProtoIPv6       = 41
	ProtoRouting    = 43
	ProtoFragment   = 44
	ProtoESP        = 50
	ProtoAH         = 51
	ProtoICMPv6     = 58
	ProtoNoNext     = 59
	ProtoDestOpts   = 60
	ProtoICMP       = 1
	DefaultTTL      = 64
	IPv4MinimumSize = 20
	IPv6MinimumSize = 40
)

// IPv4 is an IPv4 header (RFC 791 §3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv4 []byte

const (
	v4VersIHL   = 0
	v4TOS       = 1
	v4TotalLen  = 2
	v4ID        = 4
	v4FlagsFrag = 6
	v4TTL       = 8
	v4Protocol  = 9
	v4Checksum  = 10
	v4Src       = 12
	v4Dst       = 16
)

// IPv4 flag bits in the flags/fragment-offset field.
const (
	IPv4FlagDF = 0x4000
	IPv4FlagMF = 0x2000
)

// IPv4Fields holds the fields Encode writes; the header has no options.
type IPv4Fields struct {
	TOS         uint8
	TotalLength uint16
	ID          uint16
	Flags       uint16 // IPv4FlagDF etc.; the fragment offset is zero
	TTL         uint8
	Protocol    uint8
	Src, Dst    netip.Addr
}

// IsValid reports whether b starts with a well-formed IPv4 header whose
// total length fits in b.
func (b IPv4) IsValid() bool {
	if len(b) < IPv4MinimumSize || b[v4VersIHL]>>4 != 4 {
		return false
	}
	hl := b.HeaderLength()
	tl := int(b.TotalLength())
	return hl >= IPv4MinimumSize && hl <= tl && tl <= len(b)
}

// HeaderLength returns IHL in bytes.
func (b IPv4) HeaderLength() int { return int(b[v4VersIHL]&0xf) * 4 }

// TOS returns the type of service (DSCP and ECN) byte.
func (b IPv4) TOS() uint8 { return b[v4TOS] }

// TotalLength returns the total length field.
func (b IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(b[v4TotalLen:]) }

// FlagsFragment returns the flags and fragment offset field.
func (b IPv4) FlagsFragment() uint16 { return binary.BigEndian.Uint16(b[v4FlagsFrag:]) }

// IsFragment reports whether b is a fragment (MF set or a nonzero offset).
func (b IPv4) IsFragment() bool { return b.FlagsFragment()&0x3fff != 0 }

// TTL returns the time to live.
func (b IPv4) TTL() uint8 { return b[v4TTL] }

// Protocol returns the protocol field.
func (b IPv4) Protocol() uint8 { return b[v4Protocol] }

// Src returns the source address.
func (b IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(b[v4Src : v4Src+4])) }

// Dst returns the destination address.
func (b IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(b[v4Dst : v4Dst+4])) }

// Payload returns the bytes after the header up to the total length.
func (b IPv4) Payload() []byte { return b[b.HeaderLength():b.TotalLength()] }

// SetTotalLength sets the total length field.
func (b IPv4) SetTotalLength(n uint16) { binary.BigEndian.PutUint16(b[v4TotalLen:], n) }

// SetProtocol sets the protocol field.
func (b IPv4) SetProtocol(p uint8) { b[v4Protocol] = p }

// SetTTL sets the time to live.
func (b IPv4) SetTTL(t uint8) { b[v4TTL] = t }

// Encode writes a 20-byte header with no options and its checksum.
func (b IPv4) Encode(f *IPv4Fields) {
	b[v4VersIHL] = 0x45
	b[v4TOS] = f.TOS
	binary.BigEndian.PutUint16(b[v4TotalLen:], f.TotalLength)
	binary.BigEndian.PutUint16(b[v4ID:], f.ID)
	binary.BigEndian.PutUint16(b[v4FlagsFrag:], f.Flags)
	b[v4TTL] = f.TTL
	b[v4Protocol] = f.Protocol
	s, d := f.Src.As4(), f.Dst.As4()
	copy(b[v4Src:], s[:])
	copy(b[v4Dst:], d[:])
	b.UpdateChecksum()
}

// EncodeFrom writes to b a 20-byte header made of tmpl's constant fields —
// version and IHL, TTL, protocol, addresses — and the fields that change
// from packet to packet: TOS, total length, identification, flags and the
// checksum, which must be zero in tmpl. partial is the one's complement
// sum of tmpl's words. It writes whole words, the header being on the
// per-packet path of tunnel mode.
func (b IPv4) EncodeFrom(tmpl *[IPv4MinimumSize]byte, partial uint32, tos uint8, totalLen, id, flags uint16) {
	sum := partial + uint32(tos) + uint32(totalLen) + uint32(id) + uint32(flags)
	sum = sum>>16 + sum&0xffff
	binary.BigEndian.PutUint64(b, binary.BigEndian.Uint64(tmpl[0:])|uint64(tos)<<48|uint64(totalLen)<<32|uint64(id)<<16|uint64(flags))
	binary.BigEndian.PutUint64(b[8:], binary.BigEndian.Uint64(tmpl[8:])|uint64(^uint16(sum+sum>>16))<<32)
	copy(b[16:IPv4MinimumSize], tmpl[16:])
}

// UpdateChecksum recomputes the header checksum.
func (b IPv4) UpdateChecksum() {
	binary.BigEndian.PutUint16(b[v4Checksum:], 0)
	binary.BigEndian.PutUint16(b[v4Checksum:], ^Checksum(b[:b.HeaderLength()], 0))
}

// ChecksumValid reports whether the header checksum verifies.
func (b IPv4) ChecksumValid() bool { return Checksum(b[:b.HeaderLength()], 0) == 0xffff }

// IPv4Mutable holds the IPv4 fields that AH does not protect (RFC 4302
// §3.3.3.1.1.1): TOS, flags and fragment offset, TTL and checksum.
type IPv4Mutable [7]byte

// ZeroMutable saves the mutable fields into m and zeroes them in b.
func (b IPv4) ZeroMutable(m *IPv4Mutable) {
	m[0] = b[v4TOS]
	copy(m[1:3], b[v4FlagsFrag:v4FlagsFrag+2])
	m[3] = b[v4TTL]
	copy(m[4:6], b[v4Checksum:v4Checksum+2])
	b[v4TOS] = 0
	clear(b[v4FlagsFrag : v4FlagsFrag+2])
	b[v4TTL] = 0
	clear(b[v4Checksum : v4Checksum+2])
}

// RestoreMutable writes back the fields saved by ZeroMutable.
func (b IPv4) RestoreMutable(m *IPv4Mutable) {
	b[v4TOS] = m[0]
	copy(b[v4FlagsFrag:], m[1:3])
	b[v4TTL] = m[3]
	copy(b[v4Checksum:], m[4:6])
}

// IPv6 is the fixed IPv6 header (RFC 8200 §3):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Source Address (128)                  |
//	|                      Destination Address (128)                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv6 []byte

const (
	v6VersTCFlow = 0
	v6PayloadLen = 4
	v6NextHeader = 6
	v6HopLimit   = 7
	v6Src        = 8
	v6Dst        = 24
)

// IPv6Fields holds the fields Encode writes.
type IPv6Fields struct {
	TrafficClass  uint8
	FlowLabel     uint32
	PayloadLength uint16
	NextHeader    uint8
	HopLimit      uint8
	Src, Dst      netip.Addr
}

// IsValid reports whether b starts with an IPv6 header whose payload length
// fits in b.
func (b IPv6) IsValid() bool {
	return len(b) >= IPv6MinimumSize && b[0]>>4 == 6 && IPv6MinimumSize+int(b.PayloadLength()) <= len(b)
}

// TrafficClass returns the traffic class.
func (b IPv6) TrafficClass() uint8 { return uint8(binary.BigEndian.Uint16(b[v6VersTCFlow:]) >> 4) }

// PayloadLength returns the payload length field.
func (b IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(b[v6PayloadLen:]) }

// NextHeader returns the next header field.
func (b IPv6) NextHeader() uint8 { return b[v6NextHeader] }

// HopLimit returns the hop limit.
func (b IPv6) HopLimit() uint8 { return b[v6HopLimit] }

// Src returns the source address.
func (b IPv6) Src() netip.Addr { return netip.AddrFrom16([16]byte(b[v6Src : v6Src+16])) }

// Dst returns the destination address.
func (b IPv6) Dst() netip.Addr { return netip.AddrFrom16([16]byte(b[v6Dst : v6Dst+16])) }

// SetTrafficClass sets the traffic class.
func (b IPv6) SetTrafficClass(tc uint8) {
	w := binary.BigEndian.Uint32(b[v6VersTCFlow:])
	binary.BigEndian.PutUint32(b[v6VersTCFlow:], w&^(0xff<<20)|uint32(tc)<<20)
}

// SetPayloadLength sets the payload length field.
func (b IPv6) SetPayloadLength(n uint16) { binary.BigEndian.PutUint16(b[v6PayloadLen:], n) }

// SetNextHeader sets the next header field.
func (b IPv6) SetNextHeader(p uint8) { b[v6NextHeader] = p }

// SetHopLimit sets the hop limit.
func (b IPv6) SetHopLimit(h uint8) { b[v6HopLimit] = h }

// Encode writes the header.
func (b IPv6) Encode(f *IPv6Fields) {
	binary.BigEndian.PutUint32(b[v6VersTCFlow:], 6<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(b[v6PayloadLen:], f.PayloadLength)
	b[v6NextHeader] = f.NextHeader
	b[v6HopLimit] = f.HopLimit
	s, d := f.Src.As16(), f.Dst.As16()
	copy(b[v6Src:], s[:])
	copy(b[v6Dst:], d[:])
}

// IPv6Mutable holds the IPv6 fields AH does not protect (RFC 4302
// §3.3.3.1.2.1): version/traffic class/flow label word and hop limit.
type IPv6Mutable [5]byte

// ZeroMutable saves the mutable fields into m and zeroes them, keeping the
// version.
func (b IPv6) ZeroMutable(m *IPv6Mutable) {
	copy(m[:4], b[v6VersTCFlow:v6VersTCFlow+4])
	m[4] = b[v6HopLimit]
	binary.BigEndian.PutUint32(b[v6VersTCFlow:], 6<<28)
	b[v6HopLimit] = 0
}

// RestoreMutable writes back the fields saved by ZeroMutable.
func (b IPv6) RestoreMutable(m *IPv6Mutable) {
	copy(b[v6VersTCFlow:], m[:4])
	b[v6HopLimit] = m[4]
}

// IsExtension reports whether proto is an IPv6 extension header that may
// precede ESP or AH (hop-by-hop, routing, fragment, destination options).
func IsExtension(proto uint8) bool {
	switch proto {
	case ProtoHopByHop, ProtoRouting, ProtoFragment, ProtoDestOpts:
		return true
	}
	return false
}

// ExtensionLength returns the length of the extension header at the start
// of b with protocol proto, and its next header; ok is false if b is too
// short (RFC 8200 §4).
func ExtensionLength(b []byte, proto uint8) (n int, next uint8, ok bool) {
	if len(b) < 8 {
		return 0, 0, false
	}
	if proto == ProtoFragment {
		n = 8
	} else {
		n = (int(b[1]) + 1) * 8
	}
	if n > len(b) {
		return 0, 0, false
	}
	return n, b[0], true
}
