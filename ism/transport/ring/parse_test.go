package ring

import (
	"encoding/binary"
	"testing"

	"github.com/ismgw/ism/internal/testpkt"
)

// FuzzParseIP: parseIP never panics, and what it accepts is a packet whose
// length fields say its length, with the header inside it.
func FuzzParseIP(f *testing.F) {
	f.Add(espPacket(a4, b4, 100, 1))
	f.Add(espPacket(a6, b6, 100, 1))
	f.Add(testpkt.IP(a4, b4, protoAH, make([]byte, 24)))
	f.Add([]byte{0x4f, 0, 0, 20})
	f.Fuzz(func(t *testing.T, p []byte) {
		h, ok := parseIP(p)
		if !ok {
			return
		}
		if h.v6 {
			if len(p) < 40 || 40+int(binary.BigEndian.Uint16(p[4:])) != len(p) || h.dst.As16() != [16]byte(p[24:40]) {
				t.Fatalf("accepted %x as %+v", p, h)
			}
			return
		}
		if h.hdrLen < 20 || h.hdrLen > len(p) || int(binary.BigEndian.Uint16(p[2:])) != len(p) || h.dst.As4() != [4]byte(p[16:20]) {
			t.Fatalf("accepted %x as %+v", p, h)
		}
		ipv4Checksum(append([]byte(nil), p[:h.hdrLen]...)) // must not panic either
	})
}
