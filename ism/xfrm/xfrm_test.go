package xfrm

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// TestXFRMUnusable: the tunnels XFRM cannot take, whatever the kernel;
// driver software does not ask for XFRM at all.
func TestXFRMUnusable(t *testing.T) {
	gcm, _ := transform.Lookup("esp-aes128-gcm16")
	rng, err := selector.FromRange(netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.50"))
	if err != nil {
		t.Fatal(err)
	}
	any := selector.AnyOf(netip.MustParseAddr("192.0.2.1"))
	dest := netip.MustParseAddr("192.0.2.2")
	d := New(Config{})
	for _, c := range []struct {
		name string
		t    *datapath.Tunnel
		want string
	}{
		{"transport", &datapath.Tunnel{Mode: ipsec.Transport, Local: any, Remote: any, Destination: dest}, "transport mode"},
		{"udp", &datapath.Tunnel{UDPPort: 4500, Local: any, Remote: any, Destination: dest}, "UDP encapsulation (RFC 3948)"},
		{"range", &datapath.Tunnel{Local: any, Remote: rng, Destination: dest}, "range selector"},
		{"no destination", &datapath.Tunnel{Local: any, Remote: any}, "without a fixed destination"},
		{"policy route", &datapath.Tunnel{Name: "t1", Local: any, Remote: any, Destination: dest, PolicyRoutes: true}, "policy routes"},
	} {
		c.t.Transforms, c.t.Driver = []transform.Transform{gcm}, "kernel"
		err := d.Supports(c.t)
		var u *datapath.Unsupported
		if !errors.As(err, &u) || !strings.Contains(u.Reason, c.want) || !u.Asked || !errors.Is(err, datapath.ErrUnsupported) {
			t.Errorf("%s: %v, want it to say %q", c.name, err, c.want)
		}
	}
	if err := d.Supports(&datapath.Tunnel{Driver: "software"}); !errors.Is(err, datapath.ErrNotAsked) {
		t.Errorf("driver software: %v, want ErrNotAsked", err)
	}
}

// TestXFRMLinkData: the xfrm link kind's data is IFLA_XFRM_IF_ID and
// reads back.
func TestXFRMLinkData(t *testing.T) {
	ae := netlink.NewAttributeEncoder()
	if err := (&linkData{IfID: 0x15a00007}).Encode(ae); err != nil {
		t.Fatal(err)
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// struct nlattr {len 8, type IFLA_XFRM_IF_ID}, then the ID.
	if len(b) != 8 || binary.NativeEndian.Uint16(b[2:]) != unix.IFLA_XFRM_IF_ID || binary.NativeEndian.Uint32(b[4:]) != 0x15a00007 {
		t.Fatalf("encoded % x", b)
	}
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatal(err)
	}
	var l linkData
	if err := l.Decode(ad); err != nil || l.IfID != 0x15a00007 {
		t.Fatalf("decoded %#x, %v", l.IfID, err)
	}
}

// TestPolicySelectors: "any" selectors become their family's catch-all
// prefix; prefixes stay themselves.
func TestPolicySelectors(t *testing.T) {
	any := selector.AnyOf(netip.MustParseAddr("192.0.2.1"))
	got := policySelectors(&datapath.Tunnel{Local: any, Remote: any})
	if len(got) != 1 || got[0][0].String() != "0.0.0.0/0" || got[0][1].String() != "0.0.0.0/0" {
		t.Errorf("any: %v", got)
	}
	any6 := selector.AnyOf(netip.MustParseAddr("2001:db8::1"))
	if got = policySelectors(&datapath.Tunnel{Local: any6, Remote: any6}); got[0][0].String() != "::/0" {
		t.Errorf("any (IPv6): %v", got)
	}
	l := selector.FromPrefix(netip.MustParsePrefix("198.51.100.0/24"))
	r := selector.Host(netip.MustParseAddr("203.0.113.1"))
	got = policySelectors(&datapath.Tunnel{Local: l, Remote: r})
	if len(got) != 1 || got[0][0].String() != "198.51.100.0/24" || got[0][1].String() != "203.0.113.1/32" {
		t.Errorf("prefixes: %v", got)
	}
}

// TestXFRMNarrowedSA: an SA with selectors of its own is refused with
// ErrUnsupported (the gateway then moves the tunnel to the lookaside
// datapath) before anything reaches the kernel, and its keys are zeroed.
func TestXFRMNarrowedSA(t *testing.T) {
	l := selector.FromPrefix(netip.MustParsePrefix("198.51.100.0/24"))
	r := selector.FromPrefix(netip.MustParsePrefix("203.0.113.0/24"))
	p := &path{t: &datapath.Tunnel{Name: "t1", Local: l, Remote: r}}
	key := ipsec.Key{1, 2, 3, 4}
	sa := &datapath.SA{Direction: ipsec.Outbound, CipherKey: key, Local: selector.Of(l),
		Remote: selector.Of(selector.FromPrefix(netip.MustParsePrefix("203.0.113.0/25")))}
	err := p.AddSA(sa)
	if !errors.Is(err, datapath.ErrUnsupported) || !strings.Contains(err.Error(), "198.51.100.0/24 to 203.0.113.0/25") {
		t.Fatalf("AddSA: %v", err)
	}
	if key[0] != 0 {
		t.Error("the refused SA's key was not zeroed")
	}
}
