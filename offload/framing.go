package offload

import (
	"encoding/binary"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/offload/header"
)

// framing is what prepare leaves for finish. Offsets are relative to the
// packet start (Buf.Off) as it is after prepare.
type framing struct {
	ipLen  int  // IP header bytes in front (outer, or kept in transport mode)
	hdr    int  // offset of the ESP or AH header
	pay    int  // offset of the ESP payload (after the IV)
	payLen int  // ESP payload with padding and trailer
	nhPos  int  // transport mode: offset of the next-header field to rewrite
	inner  int  // outbound: bytes accounted against the lifetime
	esn    bool // the ESN high bits sit before the ICV and must go
	// icvMove: outbound, finish moves the ICV into its place (AH, or
	// ESP with the ESN high bits under the ICV).
	icvMove bool
	v6      bool
	// fromESP: inbound, the packet started at the ESP header (a UDP
	// socket took the IP and UDP headers off; Packet.Outer has them).
	fromESP bool
	mut4    header.IPv4Mutable
	mut6    header.IPv6Mutable
}

// walkIPv6 finds where ESP or AH goes in (or is found in) an IPv6 packet:
// after hop-by-hop, routing and destination options headers (RFC 4303
// §3.1.1). It returns the header bytes before that point, the protocol that
// follows and the offset of the next-header field that names it.
func walkIPv6(pkt []byte, inbound bool) (n int, proto uint8, nhPos int, r DropReason) {
	proto, n, nhPos = header.IPv6(pkt).NextHeader(), header.IPv6MinimumSize, 6
	for i := 0; header.IsExtension(proto); i++ {
		if proto == header.ProtoFragment || i == 8 {
			if inbound {
				return 0, 0, 0, DropMalformed
			}
			return 0, 0, 0, DropUnsupported
		}
		l, next, ok := header.ExtensionLength(pkt[n:], proto)
		if !ok {
			return 0, 0, 0, DropMalformed
		}
		nhPos, n, proto = n, n+l, next
	}
	return n, proto, nhPos, NotDropped
}

// grow moves the packet start back by insert bytes, carrying the first keep
// bytes (a transport-mode IP header) along, and checks the tailroom.
func grow(b *driver.Buffer, keep, insert, tail int) bool {
	if b.Off < insert || b.Tailroom() < tail {
		return false
	}
	if keep > 0 {
		copy(b.Mem[b.Off-insert:b.Off-insert+keep], b.Mem[b.Off:b.Off+keep])
	}
	b.Off -= insert
	b.Len += insert
	return true
}

// setAAD writes the ESP AAD: SPI and the 32-bit sequence number, or SPI and
// the 64-bit extended sequence number (RFC 4106 §5).
func setAAD(aad *[12]byte, spi uint32, seq uint64, esn bool) uint8 {
	binary.BigEndian.PutUint32(aad[0:], spi)
	if esn {
		binary.BigEndian.PutUint64(aad[4:], seq)
		return 12
	}
	binary.BigEndian.PutUint32(aad[4:], uint32(seq))
	return 8
}

func zeroMutable(pkt []byte, f *framing) {
	if f.v6 {
		header.IPv6(pkt).ZeroMutable(&f.mut6)
	} else {
		header.IPv4(pkt).ZeroMutable(&f.mut4)
	}
}

func restoreMutable(pkt []byte, f *framing) {
	if f.v6 {
		header.IPv6(pkt).RestoreMutable(&f.mut6)
	} else {
		header.IPv4(pkt).RestoreMutable(&f.mut4)
	}
}
