package offload_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// TestFrameESP: ESP in UDP framed from the ESP header, as a UDP socket
// sends and receives it, is the wire format of FrameIP without the IP and
// UDP headers. A FrameESP packet with the headers the socket would write
// decapsulates on the IP path, and a FrameIP packet with its headers
// taken off decapsulates from the ESP header with the addresses as
// metadata, in tunnel and transport mode, IPv4 and IPv6.
func TestFrameESP(t *testing.T) {
	for _, name := range []string{"esp-aes128-gcm16", "esp-3des-hmac-sha", "esp-null-hmac-md5"} {
		tr, _ := transform.Lookup(name)
		for _, mode := range []ipsec.Mode{ipsec.Tunnel, ipsec.Transport} {
			for _, v6 := range []bool{false, true} {
				o := pairOpts{mode: mode, v6: v6, udp: true, window: offload.DefaultReplayWindow}
				t.Run(fmt.Sprintf("%s/%s/v6=%v", name, mode, v6), func(t *testing.T) { frameESP(t, tr, o) })
			}
		}
	}
}

func frameESP(t *testing.T, tr transform.Transform, o pairOpts) {
	src, dst := netip.AddrPortFrom(v4a, 4500), netip.AddrPortFrom(v4b, 4501)
	if o.v6 {
		src, dst = netip.AddrPortFrom(v6a, 4500), netip.AddrPortFrom(v6b, 4501)
	}
	ck, ak := keysFor(tr, 7)
	c := offload.SAConfig{SPI: 0x2000, Transform: tr, Mode: o.mode, Src: src.Addr(), Dst: dst.Addr(), UDPEncap: true,
		SrcPort: src.Port(), DstPort: dst.Port(), CipherKey: ck, AuthKey: ak, ReplayWindow: o.window}
	add := func(s *side, dir ipsec.Direction, f offload.Framing) *offload.SA {
		c := c
		c.Direction, c.Framing = dir, f
		sa, err := s.e.AddSA(c)
		if err != nil {
			t.Fatal(err)
		}
		return sa
	}
	espTx, ipTx, rxIP, rxESP := newSide(t), newSide(t), newSide(t), newSide(t)
	espSA, ipSA := add(espTx, ipsec.Outbound, offload.FrameESP), add(ipTx, ipsec.Outbound, offload.FrameIP)
	add(rxIP, ipsec.Inbound, offload.FrameIP)
	add(rxESP, ipsec.Inbound, offload.FrameESP)
	if o := espSA.Outer(); o.Src != src || o.Dst != dst {
		t.Fatalf("SA.Outer %v -> %v, want %v -> %v", o.Src, o.Dst, src, dst)
	}
	for i, n := range []int{0, 17, 1000} {
		in := inner(o, n, byte(i))
		// FrameESP out, the socket's headers in front, in on the IP path.
		pk := packet(in)
		pk.SA = espSA
		espTx.p.Encap([]*offload.Packet{pk})
		if pk.Drop != offload.NotDropped {
			t.Fatalf("FrameESP encap dropped: %v", pk.Drop)
		}
		esp := pk.Buf.Bytes()
		if spi := header.ESP(esp).SPI(); spi != 0x2000 {
			t.Fatalf("FrameESP packet starts with SPI 0x%x, want the ESP header", spi)
		}
		udp := make([]byte, header.UDPMinimumSize+len(esp))
		header.UDP(udp).Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: uint16(len(udp))})
		copy(udp[header.UDPMinimumSize:], esp)
		got, drop := decap(rxIP, testpkt.IP(src.Addr(), dst.Addr(), header.ProtoUDP, udp))
		if drop != offload.NotDropped {
			t.Fatalf("size %d: FrameESP packet with its headers: decap dropped %v", n, drop)
		}
		checkInner(t, o, got, in)
		// FrameIP out, the headers off, in from the ESP header.
		wire := encap(t, &side{e: ipTx.e, p: ipTx.p, sa: ipSA}, in)
		ipLen := header.IPv4MinimumSize
		if o.v6 {
			ipLen = header.IPv6MinimumSize
		}
		pk = packet(wire[ipLen+header.UDPMinimumSize:])
		pk.Outer = offload.Outer{Src: src, Dst: dst}
		rxESP.p.Decap([]*offload.Packet{pk})
		if pk.Drop != offload.NotDropped {
			t.Fatalf("size %d: from the ESP header: decap dropped %v", n, pk.Drop)
		}
		checkInner(t, o, pk.Buf.Bytes(), in)
	}
	// IKE on the NAT-T port is never ESP.
	pk := packet([]byte{0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	pk.Outer = offload.Outer{Src: src, Dst: dst}
	if rxESP.p.Decap([]*offload.Packet{pk}); pk.Drop != offload.DropMalformed {
		t.Errorf("non-ESP marker: drop %v, want malformed", pk.Drop)
	}
}

// checkInner compares a decapsulated packet with the original: whole in
// tunnel mode; in transport mode the IP header is the receiver's own,
// written from the outer addresses, so the addresses, protocol and
// payload must match.
func checkInner(t *testing.T, o pairOpts, got, want []byte) {
	t.Helper()
	if o.mode == ipsec.Tunnel {
		if !bytes.Equal(got, want) {
			t.Fatalf("got\n%x\nwant\n%x", got, want)
		}
		return
	}
	ipLen := header.IPv4MinimumSize
	if o.v6 {
		ipLen = header.IPv6MinimumSize
	}
	var gs, gd, ws, wd netip.Addr
	var gp, wp uint8
	if o.v6 {
		g, w := header.IPv6(got), header.IPv6(want)
		gs, gd, gp, ws, wd, wp = g.Src(), g.Dst(), g.NextHeader(), w.Src(), w.Dst(), w.NextHeader()
	} else {
		g, w := header.IPv4(got), header.IPv4(want)
		if !g.ChecksumValid() || int(g.TotalLength()) != len(got) {
			t.Fatalf("rebuilt IPv4 header: checksum or length wrong: %x", got[:ipLen])
		}
		gs, gd, gp, ws, wd, wp = g.Src(), g.Dst(), g.Protocol(), w.Src(), w.Dst(), w.Protocol()
	}
	if gs != ws || gd != wd || gp != wp || !bytes.Equal(got[ipLen:], want[ipLen:]) {
		t.Fatalf("transport mode: got %s->%s proto %d %x, want %s->%s proto %d %x", gs, gd, gp, got[ipLen:], ws, wd, wp, want[ipLen:])
	}
}
