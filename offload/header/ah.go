package header

import "encoding/binary"

// AH is the Authentication Header (RFC 4302 §2):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Next Header   |  Payload Len  |          RESERVED             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Security Parameters Index (SPI)               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Sequence Number Field                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                Integrity Check Value-ICV (variable)           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type AH []byte

const (
	ahNextHeader = 0
	ahPayloadLen = 1
	ahReserved   = 2
	ahSPI        = 4
	ahSeq        = 8
	ahICV        = 12
)

// AHMinimumSize is the size of an AH with no ICV.
const AHMinimumSize = 12

// AHFields holds the AH fields; the ICV is written separately.
type AHFields struct {
	NextHeader uint8
	// Length is the whole header in bytes, ICV and its padding included.
	Length int
	SPI    uint32
	Seq    uint32
}

// AHLength returns the AH length for an ICV of icvLen bytes, padded to a
// multiple of 4 bytes for IPv4 or 8 bytes for IPv6 (RFC 4302 §2.2, §3.3.3.2.1).
func AHLength(icvLen int, ipv6 bool) int {
	n := AHMinimumSize + icvLen
	align := 4
	if ipv6 {
		align = 8
	}
	return (n + align - 1) / align * align
}

// IsValid reports whether b holds the whole header its Payload Len claims.
func (b AH) IsValid() bool {
	return len(b) >= AHMinimumSize && b.Length() >= AHMinimumSize && len(b) >= b.Length()
}

// NextHeader returns the protocol of what follows the AH.
func (b AH) NextHeader() uint8 { return b[ahNextHeader] }

// Length returns the header length in bytes ((Payload Len + 2) * 4).
func (b AH) Length() int { return (int(b[ahPayloadLen]) + 2) * 4 }

// SPI returns the Security Parameters Index.
func (b AH) SPI() uint32 { return binary.BigEndian.Uint32(b[ahSPI:]) }

// Seq returns the sequence number field.
func (b AH) Seq() uint32 { return binary.BigEndian.Uint32(b[ahSeq:]) }

// ICV returns the ICV field, padding included. It requires IsValid.
func (b AH) ICV() []byte { return b[ahICV:b.Length()] }

// Encode writes f and zeroes the ICV field.
func (b AH) Encode(f *AHFields) {
	b[ahNextHeader] = f.NextHeader
	b[ahPayloadLen] = byte(f.Length/4 - 2)
	binary.BigEndian.PutUint16(b[ahReserved:], 0)
	binary.BigEndian.PutUint32(b[ahSPI:], f.SPI)
	binary.BigEndian.PutUint32(b[ahSeq:], f.Seq)
	clear(b[ahICV:f.Length])
}
