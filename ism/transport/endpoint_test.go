package transport

import (
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/netns"
)

// ownNamespace returns a handle on the test's own network namespace,
// closed when the test ends; it skips the test when not root.
func ownNamespace(t *testing.T) *netns.NS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: sockets are opened through a network namespace handle (setns)")
	}
	ns, err := netns.Open("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// TestUDPFindsEndpoint: IKE's lookup of the socket to send from, by local
// address alone, finds an endpoint in whichever VR holds it, follows the
// endpoints as they come and go, and tells ports apart.
func TestUDPFindsEndpoint(t *testing.T) {
	ns := ownNamespace(t)
	free := func(addr string) uint16 {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr+":0")))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port)
	}
	e := NewEndpoints(&ikeRecorder{}, nil)
	defer e.Close()
	v1, v2 := &vr.VR{Name: "one", NS: ns}, &vr.VR{Name: "two", NS: ns}
	a1, a2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	p1, p2 := free("127.0.0.1"), free("127.0.0.2")

	ep1 := e.Get(v1, a1)
	s1, err := ep1.Socket(UDP, p1)
	if err != nil {
		t.Fatal(err)
	}
	ep2 := e.Get(v2, a2)
	s2, err := ep2.Socket(UDP, p2)
	if err != nil {
		t.Fatal(err)
	}
	again := e.Get(v1, a1) // a second tunnel on the same source
	if again != ep1 {
		t.Fatal("Get made a second endpoint for the same VR and address")
	}
	check := func(when string, local netip.AddrPort, want *Socket) {
		t.Helper()
		if got := e.UDP(local); got != want {
			t.Errorf("%s: UDP(%v) = %v, want %v", when, local, got, want)
		}
	}
	check("both up", netip.AddrPortFrom(a1, p1), s1)
	check("both up", netip.AddrPortFrom(a2, p2), s2)
	check("both up", netip.AddrPortFrom(a1, p2), nil) // no socket on that port
	check("both up", netip.MustParseAddrPort("127.0.0.3:500"), nil)

	e.Release(ep1)
	check("one of two references released", netip.AddrPortFrom(a1, p1), s1)
	e.Release(again)
	check("released", netip.AddrPortFrom(a1, p1), nil)
	check("the other released", netip.AddrPortFrom(a2, p2), s2)
	e.Release(ep2)
	check("all released", netip.AddrPortFrom(a2, p2), nil)
	if len(e.byAddr) != 0 || len(e.m) != 0 {
		t.Errorf("after the last release: %d addresses and %d endpoints filed, want none", len(e.byAddr), len(e.m))
	}
}
