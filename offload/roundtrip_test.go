package offload_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// TestRoundTrip encapsulates and decapsulates packets of several sizes for
// every transform, mode, IP version, encapsulation and sequence number size.
func TestRoundTrip(t *testing.T) {
	for _, tr := range transform.All() {
		for _, mode := range []ipsec.Mode{ipsec.Tunnel, ipsec.Transport} {
			for _, v6 := range []bool{false, true} {
				for _, udp := range []bool{false, true} {
					if udp && tr.Protocol != transform.ESP {
						continue
					}
					for _, esn := range []bool{false, true} {
						o := pairOpts{mode: mode, v6: v6, udp: udp, esn: esn, window: offload.DefaultReplayWindow}
						name := fmt.Sprintf("%s/%s/v6=%v/udp=%v/esn=%v", tr, mode, v6, udp, esn)
						t.Run(name, func(t *testing.T) { roundTrip(t, tr, o) })
					}
				}
			}
		}
	}
}

func roundTrip(t *testing.T, tr transform.Transform, o pairOpts) {
	a, b := newSide(t), newSide(t)
	pair(t, tr, o, a, b)
	for i, n := range []int{0, 1, 15, 16, 17, 64, 333, 1420, 8000} {
		in := inner(o, n, byte(i))
		wire := encap(t, a, in)
		checkWire(t, tr, o, wire, len(in))
		got, drop := decap(b, wire)
		if drop != offload.NotDropped {
			t.Fatalf("size %d: decap dropped: %v", n, drop)
		}
		if !bytes.Equal(got, in) {
			t.Fatalf("size %d: got\n%x\nwant\n%x", n, got, in)
		}
	}
	if got := b.sa.Counters().Packets.Load(); got != 9 {
		t.Errorf("inbound SA counted %d packets, want 9", got)
	}
	if got := a.sa.Counters().Packets.Load(); got != 9 {
		t.Errorf("outbound SA counted %d packets, want 9", got)
	}
}

// checkWire checks the outer framing: protocol, lengths, SPI.
func checkWire(t *testing.T, tr transform.Transform, o pairOpts, wire []byte, innerLen int) {
	t.Helper()
	ipLen, proto := 20, wire[9]
	if o.v6 {
		ipLen, proto = 40, wire[6]
	}
	want := uint8(tr.Protocol)
	if o.udp {
		want = 17
	}
	if proto != want {
		t.Fatalf("outer protocol %d, want %d", proto, want)
	}
	if !o.v6 && !header.IPv4(wire).ChecksumValid() {
		t.Fatalf("outer IPv4 header checksum is wrong: %x", wire[:20])
	}
	if !o.v6 && int(header.IPv4(wire).TotalLength()) != len(wire) {
		t.Fatalf("outer total length %d, packet %d", header.IPv4(wire).TotalLength(), len(wire))
	}
	if o.udp {
		ipLen += 8
	}
	spi := uint32(wire[ipLen])<<24 | uint32(wire[ipLen+1])<<16 | uint32(wire[ipLen+2])<<8 | uint32(wire[ipLen+3])
	if tr.Protocol == transform.AH {
		spi = uint32(wire[ipLen+4])<<24 | uint32(wire[ipLen+5])<<16 | uint32(wire[ipLen+6])<<8 | uint32(wire[ipLen+7])
	}
	if spi != 0x1000 {
		t.Fatalf("SPI 0x%x", spi)
	}
	if o.mode == ipsec.Tunnel && len(wire) < ipLen+innerLen {
		t.Fatalf("wire %d bytes shorter than inner %d", len(wire), innerLen)
	}
}

// TestOverhead checks Overhead and MaxInner against what the engine does.
func TestOverhead(t *testing.T) {
	for _, tr := range transform.All() {
		for _, mode := range []ipsec.Mode{ipsec.Tunnel, ipsec.Transport} {
			for _, udp := range []bool{false, true} {
				if udp && tr.Protocol == transform.AH {
					continue
				}
				o := pairOpts{mode: mode, udp: udp}
				a, b := newSide(t), newSide(t)
				pair(t, tr, o, a, b)
				for _, n := range []int{100, 1000, 1001, 1002, 1003} {
					in := inner(o, n, 1)
					wire := encap(t, a, in)
					if got, want := len(wire)-len(in), offload.Overhead(tr, mode, false, udp, len(in)); got != want {
						t.Fatalf("%s %s udp=%v: overhead %d, Overhead says %d", tr, mode, udp, got, want)
					}
				}
				m := offload.MaxInner(tr, mode, false, udp, 1500)
				if m+offload.Overhead(tr, mode, false, udp, m) > 1500 || m+1+offload.Overhead(tr, mode, false, udp, m+1) <= 1500 {
					t.Fatalf("%s: MaxInner(1500) = %d is not the largest fit", tr, m)
				}
			}
		}
	}
}
