package header

import "encoding/binary"

// UDP is a UDP header (RFC 768), used here for UDP-encapsulated ESP (RFC
// 3948 §2):
//
//	 0      7 8     15 16    23 24    31
//	+--------+--------+--------+--------+
//	|     Source      |   Destination   |
//	|      Port       |      Port       |
//	+--------+--------+--------+--------+
//	|     Length      |    Checksum     |
//	+--------+--------+--------+--------+
type UDP []byte

// UDPMinimumSize is the size of a UDP header.
const UDPMinimumSize = 8

// NATTPort is the IKE and UDP-encapsulated ESP port (RFC 3948 §2.2).
const NATTPort = 4500

// NonESPMarkerSize is the size of the zero SPI that marks IKE on port 4500
// (RFC 3948 §2.2).
const NonESPMarkerSize = 4

// UDPFields holds the fields Encode writes.
type UDPFields struct {
	SrcPort, DstPort uint16
	Length           uint16
	Checksum         uint16
}

// SrcPort returns the source port.
func (b UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[0:]) }

// DstPort returns the destination port.
func (b UDP) DstPort() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// Length returns the length field.
func (b UDP) Length() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// SetLength sets the length field.
func (b UDP) SetLength(n uint16) { binary.BigEndian.PutUint16(b[4:], n) }

// Encode writes f.
func (b UDP) Encode(f *UDPFields) {
	binary.BigEndian.PutUint16(b[0:], f.SrcPort)
	binary.BigEndian.PutUint16(b[2:], f.DstPort)
	binary.BigEndian.PutUint16(b[4:], f.Length)
	binary.BigEndian.PutUint16(b[6:], f.Checksum)
}

// IsNATKeepalive reports whether a UDP payload is a NAT-keepalive (a single
// 0xFF byte, RFC 3948 §2.3).
func IsNATKeepalive(payload []byte) bool { return len(payload) == 1 && payload[0] == 0xff }

// IsNonESP reports whether a UDP payload on port 4500 starts with the
// non-ESP marker, i.e. is IKE (RFC 3948 §2.2).
func IsNonESP(payload []byte) bool {
	return len(payload) >= NonESPMarkerSize && binary.BigEndian.Uint32(payload) == 0
}
