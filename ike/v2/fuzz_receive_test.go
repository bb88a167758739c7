package v2

import (
	"net/netip"
	"testing"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
)

// FuzzReceive gives a responder daemon arbitrary datagrams: bad input is
// counted and dropped, never a panic. The seeds are a real IKE_SA_INIT
// request and random messages.
func FuzzReceive(f *testing.F) {
	clk := clocktest.New(t0)
	w := iketest.NewWire()
	defer w.Close()
	ca := pairConfig(clk)
	ca.Tunnels = []ike.Tunnel{pairTunnel(f, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	var first []byte
	w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		if first == nil {
			first = append([]byte(nil), msg...)
		}
		return nil
	})
	a, err := New(ca, iketest.NewInstaller(1), w, nil)
	if err != nil {
		f.Fatal(err)
	}
	a.Acquire("t1")
	a.Close()
	if first != nil {
		f.Add(first)
	}
	for _, s := range seedMessages() {
		f.Add(s)
	}
	cb := pairConfig(clk)
	cb.Tunnels = []ike.Tunnel{pairTunnel(f, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	d, err := New(cb, iketest.NewInstaller(2), w, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer d.Close()
	local, remote := netip.AddrPortFrom(addrB, 500), netip.AddrPortFrom(addrA, 500)
	f.Fuzz(func(t *testing.T, b []byte) {
		before := d.Status().Counters.Received
		d.Receive(local, remote, b)
		if d.Status().Counters.Received != before+1 {
			t.Fatal("a datagram was not counted")
		}
	})
}
