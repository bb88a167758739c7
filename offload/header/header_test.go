package header

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rfc3602Case5 is the ESP packet of RFC 3602 §4 case #5 (SPI, sequence
// number, IV, ciphertext) behind its IPv4 header, and the decrypted payload's
// trailer: 14 pad bytes, pad length 14, next header 1.
const (
	rfc3602Case5IP      = "4500007c 08f20000 4032f9a5 c0a87b03 c0a87b64"
	rfc3602Case5ESP     = "00004321 00000001 e96e8c08 ab465763 fd098d45 dd3ff893"
	rfc3602Case5Trailer = "01020304 05060708 090a0b0c 0d0e0e01"
)

func TestESP(t *testing.T) {
	b := ESP(unhex(t, rfc3602Case5ESP))
	if !b.IsValid() || b.SPI() != 0x4321 || b.Seq() != 1 {
		t.Fatalf("SPI %#x seq %d", b.SPI(), b.Seq())
	}
	if ESP(b[:ESPHeaderSize-1]).IsValid() {
		t.Error("7 bytes are a valid ESP header")
	}
	out := make(ESP, ESPHeaderSize)
	out.Encode(&ESPFields{SPI: 0x4321, Seq: 1})
	if !bytes.Equal(out, b[:ESPHeaderSize]) {
		t.Errorf("encoded %x", out)
	}
}

func TestESPTrailer(t *testing.T) {
	tr := ESPTrailer(unhex(t, rfc3602Case5Trailer))
	if tr.PadLen() != 14 || tr.NextHeader() != ProtoICMP || !tr.PaddingOK() {
		t.Fatalf("pad length %d, next header %d, padding ok %v", tr.PadLen(), tr.NextHeader(), tr.PaddingOK())
	}
	tr[3] = 0xff
	if tr.PaddingOK() {
		t.Error("changed padding accepted")
	}
	for pad := range 256 {
		b := make([]byte, 300)
		n := EncodeTrailer(b, pad, ProtoIPv6)
		tr := ESPTrailer(b[:n])
		if n != pad+ESPTrailerSize || tr.PadLen() != pad || tr.NextHeader() != ProtoIPv6 || !tr.PaddingOK() {
			t.Fatalf("pad %d: n %d, pad length %d, padding ok %v", pad, n, tr.PadLen(), tr.PaddingOK())
		}
	}
}

func TestAH(t *testing.T) {
	// RFC 4302 §2: next header, payload length in 32-bit words minus 2,
	// reserved, SPI, sequence number, ICV. HMAC-SHA1-96: 24 bytes.
	raw := unhex(t, "04040000 00001234 00000007 a1a2a3a4 a5a6a7a8 a9aaabac")
	b := AH(raw)
	if !b.IsValid() || b.NextHeader() != ProtoIPv4 || b.Length() != 24 || b.SPI() != 0x1234 || b.Seq() != 7 {
		t.Fatalf("next header %d length %d SPI %#x seq %d", b.NextHeader(), b.Length(), b.SPI(), b.Seq())
	}
	if !bytes.Equal(b.ICV(), raw[12:]) {
		t.Errorf("ICV %x", b.ICV())
	}
	if AH(raw[:23]).IsValid() {
		t.Error("a truncated AH is valid")
	}
	short := append([]byte(nil), raw...)
	short[1] = 0 // 8 bytes: shorter than the fixed fields
	if AH(short).IsValid() {
		t.Error("an AH shorter than its fixed fields is valid")
	}
	out := make(AH, 24)
	for i := range out {
		out[i] = 0xee
	}
	out.Encode(&AHFields{NextHeader: ProtoIPv4, Length: 24, SPI: 0x1234, Seq: 7})
	want := append(raw[:12:12], make([]byte, 12)...)
	if !bytes.Equal(out, want) {
		t.Errorf("encoded %x, want %x (ICV zeroed)", out, want)
	}
}

// TestAHLength checks the padding of AH to 32 bits over IPv4 and 64 bits
// over IPv6 (RFC 4302 §2.6), the lengths scapy's _encrypt_ah makes too.
func TestAHLength(t *testing.T) {
	for _, c := range []struct {
		icv      int
		ipv6     bool
		want     int
		scapyPad int
	}{
		{12, false, 24, 0}, {12, true, 24, 0},
		{16, false, 28, 0}, {16, true, 32, 4},
		{24, false, 36, 0}, {24, true, 40, 4},
		{32, false, 44, 0}, {32, true, 48, 4},
	} {
		if got := AHLength(c.icv, c.ipv6); got != c.want || got != AHMinimumSize+c.icv+c.scapyPad {
			t.Errorf("AHLength(%d, %v) = %d, want %d", c.icv, c.ipv6, got, c.want)
		}
	}
}

func TestUDP(t *testing.T) {
	b := make(UDP, UDPMinimumSize)
	b.Encode(&UDPFields{SrcPort: NATTPort, DstPort: 4501, Length: 100})
	if !bytes.Equal(b, []byte{0x11, 0x94, 0x11, 0x95, 0, 100, 0, 0}) || b.SrcPort() != NATTPort || b.DstPort() != 4501 || b.Length() != 100 {
		t.Errorf("encoded %x", []byte(b))
	}
	if !IsNATKeepalive([]byte{0xff}) || IsNATKeepalive([]byte{0xff, 0}) || IsNATKeepalive([]byte{0}) {
		t.Error("NAT keepalive (RFC 3948 §2.3)")
	}
	if !IsNonESP([]byte{0, 0, 0, 0, 1}) || IsNonESP([]byte{0, 0, 0}) || IsNonESP([]byte{0, 0, 0, 1}) {
		t.Error("non-ESP marker (RFC 3948 §2.2)")
	}
}

func TestIPv4(t *testing.T) {
	want := unhex(t, rfc3602Case5IP)
	b := make(IPv4, IPv4MinimumSize)
	b.Encode(&IPv4Fields{TotalLength: 0x7c, ID: 0x08f2, TTL: 64, Protocol: ProtoESP,
		Src: netip.MustParseAddr("192.168.123.3"), Dst: netip.MustParseAddr("192.168.123.100")})
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded %x, want RFC 3602's %x", []byte(b), want)
	}
	if !b.ChecksumValid() || b.HeaderLength() != 20 || b.TotalLength() != 0x7c || b.IsFragment() {
		t.Error("accessors")
	}
	pkt := append(want, make([]byte, 0x7c-20)...)
	if !IPv4(pkt).IsValid() || IPv4(pkt[:0x7b]).IsValid() || len(IPv4(pkt).Payload()) != 0x7c-20 {
		t.Error("IsValid against the total length")
	}
	pkt[9]++
	if IPv4(pkt).ChecksumValid() {
		t.Error("checksum verifies after a change")
	}
	pkt[9]--
	var m IPv4Mutable
	orig := append([]byte(nil), pkt...)
	pkt[1], pkt[6] = 0xb8, 0x40
	IPv4(pkt).ZeroMutable(&m)
	if pkt[1] != 0 || pkt[6] != 0 || pkt[8] != 0 || pkt[10] != 0 || pkt[11] != 0 {
		t.Errorf("mutable fields not zeroed: %x", pkt[:20])
	}
	IPv4(pkt).RestoreMutable(&m)
	orig[1], orig[6] = 0xb8, 0x40
	if !bytes.Equal(pkt, orig) {
		t.Errorf("restore: %x", pkt[:20])
	}
	for _, bad := range [][]byte{nil, make([]byte, 19), unhex(t, "46000014 00000000 40320000 c0a87b03 c0a87b64")} {
		if IPv4(bad).IsValid() {
			t.Errorf("%x is valid", bad)
		}
	}
}

// TestIPv4EncodeFrom: a header written from a template and its partial
// sum is the header Encode writes, checksum and all, for addresses and
// fields whose sums carry once and twice in the checksum's fold.
func TestIPv4EncodeFrom(t *testing.T) {
	x := uint32(1)
	for _, a := range [][2]string{{"192.168.123.3", "192.168.123.100"}, {"255.255.255.255", "255.255.255.254"}} {
		src, dst := netip.MustParseAddr(a[0]), netip.MustParseAddr(a[1])
		var tmpl [IPv4MinimumSize]byte
		IPv4(tmpl[:]).Encode(&IPv4Fields{TTL: 255, Protocol: ProtoUDP, Src: src, Dst: dst})
		tmpl[10], tmpl[11] = 0, 0
		var partial uint32
		for _, o := range []int{0, 8, 12, 14, 16, 18} {
			partial += uint32(tmpl[o])<<8 | uint32(tmpl[o+1])
		}
		for range 100000 {
			x = x*1664525 + 1013904223 // fields from a fixed pseudo-random sequence
			f := IPv4Fields{TOS: uint8(x >> 24), TotalLength: uint16(x), ID: uint16(x >> 8), Flags: uint16(x>>16) & IPv4FlagDF,
				TTL: 255, Protocol: ProtoUDP, Src: src, Dst: dst}
			want := make(IPv4, IPv4MinimumSize)
			want.Encode(&f)
			got := IPv4(bytes.Repeat([]byte{0xa5}, IPv4MinimumSize))
			got.EncodeFrom(&tmpl, partial, f.TOS, f.TotalLength, f.ID, f.Flags)
			if !bytes.Equal(got, want) || !got.ChecksumValid() {
				t.Fatalf("%+v: wrote %x, want %x", f, []byte(got), []byte(want))
			}
		}
	}
}

func TestIPv6(t *testing.T) {
	b := make(IPv6, IPv6MinimumSize+4)
	b.Encode(&IPv6Fields{TrafficClass: 0xb8, FlowLabel: 0x12345, PayloadLength: 4, NextHeader: ProtoESP, HopLimit: 64,
		Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2")})
	if !bytes.Equal(b[:8], []byte{0x6b, 0x81, 0x23, 0x45, 0, 4, ProtoESP, 64}) {
		t.Fatalf("encoded %x", b[:8])
	}
	if !b.IsValid() || b.TrafficClass() != 0xb8 || b.Src() != netip.MustParseAddr("2001:db8::1") || b.Dst() != netip.MustParseAddr("2001:db8::2") {
		t.Error("accessors")
	}
	if IPv6(b[:IPv6MinimumSize+3]).IsValid() {
		t.Error("valid with a truncated payload")
	}
	var m IPv6Mutable
	orig := append([]byte(nil), b...)
	b.ZeroMutable(&m)
	if !bytes.Equal(b[:4], []byte{0x60, 0, 0, 0}) || b.HopLimit() != 0 {
		t.Errorf("mutable fields not zeroed: %x", b[:8])
	}
	b.RestoreMutable(&m)
	if !bytes.Equal(b, orig) {
		t.Error("restore")
	}
}

func TestExtensionLength(t *testing.T) {
	for _, c := range []struct {
		b     []byte
		proto uint8
		n     int
		next  uint8
		ok    bool
	}{
		{[]byte{ProtoESP, 0, 1, 4, 0, 0, 0, 0}, ProtoHopByHop, 8, ProtoESP, true},
		{append([]byte{ProtoAH, 1}, make([]byte, 14)...), ProtoDestOpts, 16, ProtoAH, true},
		{[]byte{ProtoESP, 1, 0, 0, 0, 0, 0, 0}, ProtoDestOpts, 0, 0, false},
		{[]byte{ProtoUDP, 200, 0, 0, 0, 0, 0, 0}, ProtoFragment, 8, ProtoUDP, true},
		{[]byte{ProtoUDP, 0, 0}, ProtoRouting, 0, 0, false},
	} {
		n, next, ok := ExtensionLength(c.b, c.proto)
		if n != c.n || next != c.next || ok != c.ok {
			t.Errorf("%x as %d: %d %d %v", c.b, c.proto, n, next, ok)
		}
	}
	if !IsExtension(ProtoFragment) || IsExtension(ProtoESP) {
		t.Error("IsExtension")
	}
}
