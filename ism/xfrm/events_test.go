package xfrm

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/driver/kernel"
	"github.com/ismgw/ism/transform"
)

// expireMsg builds struct xfrm_user_expire (<linux/xfrm.h>) as the kernel
// sends it: struct xfrm_usersa_info with the SA's destination, SPI,
// protocol and family, then hard.
func expireMsg(dst netip.Addr, spi uint32, proto uint8, hard bool) []byte {
	b := make([]byte, 232) // sizeof(struct xfrm_user_expire), 8-aligned
	copy(b[saInfoDaddr:], dst.AsSlice())
	binary.NativeEndian.PutUint64(b[saInfoBytes:], uint64(spi)*100)
	binary.NativeEndian.PutUint64(b[saInfoPkts:], uint64(spi))
	binary.BigEndian.PutUint32(b[saInfoSPI:], spi)
	b[saInfoProto] = proto
	fam := uint16(unix.AF_INET)
	if dst.Is6() {
		fam = unix.AF_INET6
	}
	binary.NativeEndian.PutUint16(b[saInfoFamily:], fam)
	if hard {
		b[expireHard] = 1
	}
	return b
}

func TestParseExpire(t *testing.T) {
	for _, c := range []expire{
		{dst: netip.MustParseAddr("192.0.2.2"), spi: 0xc0ffee01, proto: transform.ESP, hard: true,
			usage: kernel.SAUsage{Bytes: 0xc0ffee01 * 100, Packets: 0xc0ffee01}},
		{dst: netip.MustParseAddr("2001:db8::2"), spi: 0x1001, proto: transform.AH,
			usage: kernel.SAUsage{Bytes: 0x1001 * 100, Packets: 0x1001}},
	} {
		got, err := parseExpire(expireMsg(c.dst, c.spi, uint8(c.proto), c.hard))
		if err != nil || got != c {
			t.Errorf("parseExpire: %+v, %v; want %+v", got, err, c)
		}
	}
	b := expireMsg(netip.MustParseAddr("192.0.2.2"), 1, 50, false)
	if _, err := parseExpire(b[:expireLen-1]); err == nil {
		t.Error("a short expire message parsed")
	}
	binary.NativeEndian.PutUint16(b[saInfoFamily:], 99)
	if _, err := parseExpire(b); err == nil {
		t.Error("an expire message of family 99 parsed")
	}
}

// FuzzXFRMExpire: any bytes give an expire or an error, never a panic, and
// what parses has an address of the family the message names.
func FuzzXFRMExpire(f *testing.F) {
	f.Add(expireMsg(netip.MustParseAddr("192.0.2.2"), 0x1001, 50, true))
	f.Add(expireMsg(netip.MustParseAddr("2001:db8::1"), 0x2002, 51, false))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseExpire(b)
		if err != nil {
			return
		}
		fam := binary.NativeEndian.Uint16(b[saInfoFamily:])
		if (fam == unix.AF_INET) != e.dst.Is4() || e.hard != (b[expireHard] != 0) {
			t.Fatalf("parsed %+v from family %d", e, fam)
		}
		if _, ok := acquireDst(b); !ok {
			t.Fatal("a message long enough to be an expire is too short for an acquire")
		}
	})
}
