package offload_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

func TestSmoke(t *testing.T) {
	fb := fallback.New(1)
	e, err := offload.New(offload.Config{Fallback: fb})
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	key := make(driver.Key, tr.CipherKeyLen())
	out, err := e.AddSA(offload.SAConfig{SPI: 0x1001, Transform: tr, Direction: driver.Outbound, Src: a, Dst: b, CipherKey: key})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.AddSA(offload.SAConfig{SPI: 0x1001, Transform: tr, Direction: driver.Inbound, Src: a, Dst: b, CipherKey: key, ReplayWindow: 64})
	if err == nil {
		t.Fatal("duplicate accepted")
	}
	t.Log(err)
	e2, _ := offload.New(offload.Config{Fallback: fb})
	if _, err := e2.AddSA(offload.SAConfig{SPI: 0x1001, Transform: tr, Direction: driver.Inbound, Src: a, Dst: b, CipherKey: key, ReplayWindow: 64}); err != nil {
		t.Fatal(err)
	}
	inner := testpkt.UDP(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1"), 1, 2, 100, 7)
	pk := offload.NewPacket()
	pk.Reset(len(inner))
	copy(pk.Buf.Bytes(), inner)
	pk.SA = out
	e.NewProcessor().Encap([]*offload.Packet{pk})
	if pk.Drop != 0 {
		t.Fatal(pk.Drop)
	}
	t.Logf("%x", pk.Buf.Bytes())
	e2.NewProcessor().Decap([]*offload.Packet{pk})
	if pk.Drop != 0 {
		t.Fatal(pk.Drop)
	}
	if !bytes.Equal(pk.Buf.Bytes(), inner) {
		t.Fatalf("got %x", pk.Buf.Bytes())
	}
}
