package selector

import (
	"net/netip"
	"testing"
)

func TestContains(t *testing.T) {
	a := netip.MustParseAddr
	sub := FromPrefix(netip.MustParsePrefix("198.51.100.0/25"))
	rng, err := FromRange(a("203.0.113.10"), a("203.0.113.50"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		s    Selector
		addr string
		want bool
	}{
		{sub, "198.51.100.0", true},
		{sub, "198.51.100.127", true},
		{sub, "198.51.100.128", false},
		{rng, "203.0.113.9", false},
		{rng, "203.0.113.10", true},
		{rng, "203.0.113.50", true},
		{rng, "203.0.113.51", false},
		{rng, "2001:db8::1", false},
		{Host(a("192.0.2.7")), "192.0.2.7", true},
		{Host(a("192.0.2.7")), "192.0.2.8", false},
		{AnyOf(a("192.0.2.1")), "10.1.2.3", true},
		{AnyOf(a("2001:db8::1")), "10.1.2.3", false},
		{FromPrefix(netip.MustParsePrefix("2001:db8:1::/48")), "2001:db8:1:ffff::1", true},
		{FromPrefix(netip.MustParsePrefix("2001:db8:1::/48")), "2001:db8:2::1", false},
	}
	for _, c := range cases {
		if got := c.s.Contains(a(c.addr)); got != c.want {
			t.Errorf("%v contains %s = %v, want %v", c.s, c.addr, got, c.want)
		}
	}
	if _, err := FromRange(a("203.0.113.50"), a("203.0.113.10")); err == nil {
		t.Error("backwards range accepted")
	}
	if p, ok := sub.Prefix(); !ok || p.String() != "198.51.100.0/25" {
		t.Errorf("Prefix = %v %v", p, ok)
	}
	if _, ok := rng.Prefix(); ok {
		t.Error("range 10-50 is not a prefix")
	}
	if rng.String() != "range 203.0.113.10 203.0.113.50" || sub.String() != "198.51.100.0/25" {
		t.Errorf("String: %q %q", rng, sub)
	}
}
