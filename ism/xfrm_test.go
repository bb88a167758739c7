package ism

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/driver/kernel"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// tunnelDetail returns `show ipsec tunnel detail ipsec:t1` and its data.
func tunnelDetail(t *testing.T, g *Gateway) (string, TunnelStatus) {
	t.Helper()
	text, data, err := g.Exec("show ipsec tunnel detail ipsec:t1")
	if err != nil {
		t.Fatal(err)
	}
	ts := data.([]TunnelStatus)
	if len(ts) != 1 {
		t.Fatalf("show ipsec tunnel detail: want one tunnel:\n%s", text)
	}
	return text, ts[0]
}

// TestXFRMNotChosen runs where the kernel has no XFRM ESP (the CI
// machine): a tunnel with driver auto runs on the lookaside datapath and
// says why in the probe's words; with driver kernel it says the same, falls
// back (carrying traffic) and the fallback is counted.
func TestXFRMNotChosen(t *testing.T) {
	r := kernel.Probe()
	if r.ESP.Present {
		t.Skip("the kernel has XFRM ESP: TestXFRMDatapath covers the XFRM choice")
	}
	for _, c := range []struct {
		driver  string
		counted uint64
	}{{"auto", 0}, {"kernel", 1}} {
		t.Run(c.driver, func(t *testing.T) {
			t.Parallel()
			x := newLab2(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel, extraA: "  tunnel driver " + c.driver + "\n", xfrm: true})
			if err := x.ping(t, 3); err != nil {
				t.Fatal(err)
			}
			text, st := tunnelDetail(t, x.ga)
			t.Logf("%s", text)
			want := "Datapath lookaside: xfrm protocol offload not used: " + r.ESP.Reason
			if !strings.Contains(text, want) || st.Datapath != "lookaside" || st.Interface != TUNName {
				t.Errorf("show ipsec tunnel detail: want %q on the TUN device:\n%s", want, text)
			}
			if st.State != "up" || st.Outbound.Packets < 3 || st.Inbound.Packets < 3 {
				t.Errorf("tunnel %s, %d out, %d in; want up, 3 each way", st.State, st.Outbound.Packets, st.Inbound.Packets)
			}
			fb := x.ga.Statistics().Fallbacks
			if fb["xfrm-unavailable"] != c.counted || fb["xfrm-fault"] != 0 {
				t.Errorf("fallbacks %v: want xfrm-unavailable %d, xfrm-fault 0", fb, c.counted)
			}
			if text, _, _ := x.ga.Exec("show ipsec statistics"); !strings.Contains(text, fmt.Sprintf("xfrm-unavailable %d", c.counted)) {
				t.Errorf("show ipsec statistics does not count the fallback:\n%s", text)
			}
		})
	}
}

// TestXFRMSoftwareNotAsked: driver software never looks at XFRM.
func TestXFRMSoftwareNotAsked(t *testing.T) {
	x := newLab2(t, e2eCase{transform: "esp-aes128-hmac-sha", mode: ipsec.Tunnel, extraA: "  tunnel driver software\n", xfrm: true})
	text, st := tunnelDetail(t, x.ga)
	if st.DatapathReason != "" || strings.Contains(text, "xfrm") || st.Driver != "software" {
		t.Errorf("driver software: want no XFRM reason and the software driver:\n%s", text)
	}
}

// TestXFRMUnusable: the tunnels XFRM cannot take, whatever the kernel.
func TestXFRMUnusable(t *testing.T) {
	gcm, _ := transform.Lookup("esp-aes128-gcm16")
	rng, err := selector.FromRange(netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.50"))
	if err != nil {
		t.Fatal(err)
	}
	any := selector.AnyOf(netip.MustParseAddr("192.0.2.1"))
	dest := netip.MustParseAddr("192.0.2.2")
	sa := &config.SA{Transform: gcm}
	for _, c := range []struct {
		name string
		t    *Tunnel
		cfg  config.Config
		want string
	}{
		{"transport", &Tunnel{mode: ipsec.Transport, local: any, remote: any, dest: dest}, config.Config{}, "transport mode"},
		{"udp", &Tunnel{udp: true, local: any, remote: any, dest: dest}, config.Config{}, "UDP encapsulation (RFC 3948)"},
		{"range", &Tunnel{local: any, remote: rng, dest: dest}, config.Config{}, "range selector"},
		{"no destination", &Tunnel{local: any, remote: any}, config.Config{}, "without a fixed destination"},
		{"policy route", &Tunnel{Name: "t1", local: any, remote: any, dest: dest},
			config.Config{PolicyRoutes: []config.PolicyRoute{{Tunnel: "t1"}}}, "policy routes"},
	} {
		g := &Gateway{applying: &c.cfg}
		c.t.cfg = &config.Tunnel{Type: config.Manual, Inbound: sa, Outbound: sa}
		if got := g.xfrmUnusable(c.t); !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want it to say %q", c.name, got, c.want)
		}
	}
}

// TestXFRMLinkData: the xfrm link kind's data is IFLA_XFRM_IF_ID and
// reads back.
func TestXFRMLinkData(t *testing.T) {
	ae := netlink.NewAttributeEncoder()
	if err := (&xfrmLink{IfID: 0x15a00007}).Encode(ae); err != nil {
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
	var l xfrmLink
	if err := l.Decode(ad); err != nil || l.IfID != 0x15a00007 {
		t.Fatalf("decoded %#x, %v", l.IfID, err)
	}
}

// TestPolicySelectors: "any" selectors become their family's catch-all
// prefix; prefixes stay themselves.
func TestPolicySelectors(t *testing.T) {
	any := selector.AnyOf(netip.MustParseAddr("192.0.2.1"))
	got := policySelectors(&Tunnel{local: any, remote: any})
	if len(got) != 1 || got[0][0].String() != "0.0.0.0/0" || got[0][1].String() != "0.0.0.0/0" {
		t.Errorf("any: %v", got)
	}
	any6 := selector.AnyOf(netip.MustParseAddr("2001:db8::1"))
	if got = policySelectors(&Tunnel{local: any6, remote: any6}); got[0][0].String() != "::/0" {
		t.Errorf("any (IPv6): %v", got)
	}
	l := selector.FromPrefix(netip.MustParsePrefix("198.51.100.0/24"))
	r := selector.Host(netip.MustParseAddr("203.0.113.1"))
	got = policySelectors(&Tunnel{local: l, remote: r})
	if len(got) != 1 || got[0][0].String() != "198.51.100.0/24" || got[0][1].String() != "203.0.113.1/32" {
		t.Errorf("prefixes: %v", got)
	}
}
