package selector

import (
	"net/netip"
	"testing"
)

func pfx(s string) Selector { return FromPrefix(netip.MustParsePrefix(s)) }

func TestSetContainsAndWithin(t *testing.T) {
	a := netip.MustParseAddr
	s := Set{pfx("203.0.113.0/26"), pfx("203.0.113.128/26")}
	for addr, want := range map[string]bool{"203.0.113.1": true, "203.0.113.64": false, "203.0.113.129": true, "203.0.113.200": false, "2001:db8::1": false} {
		if got := s.Contains(a(addr)); got != want {
			t.Errorf("%v contains %s = %v", s, addr, got)
		}
	}
	if !s.Within(pfx("203.0.113.0/24")) || s.Within(pfx("203.0.113.0/25")) || (Set{}).Within(pfx("0.0.0.0/0")) {
		t.Error("Within")
	}
	if s.String() != "203.0.113.0/26, 203.0.113.128/26" {
		t.Errorf("String %q", s)
	}
	if !s.Equal(Set{pfx("203.0.113.0/26"), pfx("203.0.113.128/26")}) || s.Equal(Set{pfx("203.0.113.128/26"), pfx("203.0.113.0/26")}) || !Of(pfx("10.0.0.0/8")).Is(pfx("10.0.0.0/8")) {
		t.Error("Equal/Is")
	}
}

func TestSetHostBits(t *testing.T) {
	a := netip.MustParseAddr
	r, _ := FromRange(a("203.0.113.10"), a("203.0.113.50")) // 41 addresses
	cases := []struct {
		s    Set
		want int
	}{
		{Of(Host(a("192.0.2.1"))), 0},
		{Of(pfx("203.0.113.0/24")), 8},
		{Of(pfx("203.0.113.0/25")), 7},
		{Set{pfx("203.0.113.0/26"), pfx("203.0.113.128/26")}, 7},  // 128 addresses
		{Set{pfx("203.0.113.0/26"), Host(a("203.0.113.200"))}, 7}, // 65
		{Of(r), 6},
		{Of(AnyOf(a("192.0.2.1"))), 32},
		{Of(AnyOf(a("2001:db8::1"))), 128},
		{Set{AnyOf(a("2001:db8::1")), AnyOf(a("2001:db8::1"))}, 128},
		{Of(pfx("2001:db8::/64")), 64},
		{Of(pfx("2001:db8::/63")), 65},
	}
	for _, c := range cases {
		if got := c.s.HostBits(); got != c.want {
			t.Errorf("%v: HostBits %d, want %d", c.s, got, c.want)
		}
	}
}

func TestGap(t *testing.T) {
	a := netip.MustParseAddr
	tun := pfx("203.0.113.0/24")
	cases := []struct {
		addr  string
		taken Set
		want  string // "" for none
	}{
		{"203.0.113.200", nil, "203.0.113.0/24"},
		{"203.0.113.200", Set{pfx("203.0.113.0/25")}, "203.0.113.128/25"},
		{"203.0.113.5", Set{pfx("203.0.113.0/25")}, ""},
		{"198.51.100.1", nil, ""},
		{"203.0.113.100", Set{pfx("203.0.113.0/26"), pfx("203.0.113.128/26")}, "203.0.113.64/26"},
		{"203.0.113.20", Set{Host(a("203.0.113.10")), Host(a("203.0.113.30"))}, "range 203.0.113.11 203.0.113.29"},
		{"203.0.113.255", Set{pfx("203.0.113.0/25"), pfx("198.51.100.0/24")}, "203.0.113.128/25"},
		{"203.0.113.255", Set{pfx("203.0.113.0/31"), pfx("203.0.113.2/31"), pfx("203.0.113.4/30")}, "range 203.0.113.8 203.0.113.255"},
		{"203.0.113.7", Set{pfx("203.0.113.0/29"), pfx("203.0.113.8/29")}, ""},
		{"203.0.113.6", Set{Host(a("203.0.113.7")), Host(a("203.0.113.5"))}, "203.0.113.6"},
	}
	for _, c := range cases {
		got, ok := tun.Gap(a(c.addr), c.taken)
		if (c.want == "") != !ok || ok && got.String() != c.want {
			t.Errorf("gap of %v around %s less %v = %v %v, want %q", tun, c.addr, c.taken, got, ok, c.want)
		}
	}
	if g, _ := AnyOf(a("10.0.0.1")).Gap(a("10.0.0.1"), nil); g.Kind != Any {
		t.Errorf("an untouched selector keeps its kind: %v", g)
	}
}
