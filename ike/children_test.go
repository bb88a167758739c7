package ike

import (
	"net/netip"
	"testing"

	"github.com/ismgw/ism/selector"
)

func TestAcquirePair(t *testing.T) {
	p := func(s string) selector.Selector { return selector.FromPrefix(netip.MustParsePrefix(s)) }
	a := netip.MustParseAddr
	tu := &Tunnel{LocalSelector: p("198.51.100.0/24"), RemoteSelector: p("203.0.113.0/24")}
	whole := Pair{selector.Of(p("198.51.100.0/24")), selector.Of(p("203.0.113.0/24"))}
	low := Pair{selector.Of(p("198.51.100.0/24")), selector.Of(p("203.0.113.0/25"))}
	lowLocal := Pair{selector.Of(p("198.51.100.0/25")), selector.Of(p("203.0.113.0/24"))}
	cases := []struct {
		name     string
		children []Pair
		src, dst string
		l, r     string // "" for none
	}{
		{"no child: the whole tunnel", nil, "198.51.100.7", "203.0.113.200", "198.51.100.0/24", "203.0.113.0/24"},
		{"covered by the whole", []Pair{whole}, "198.51.100.7", "203.0.113.200", "", ""},
		{"beside a narrower child", []Pair{low}, "198.51.100.7", "203.0.113.200", "198.51.100.0/24", "203.0.113.128/25"},
		{"inside the narrower child", []Pair{low}, "198.51.100.7", "203.0.113.1", "", ""},
		{"cut on the local side", []Pair{lowLocal}, "198.51.100.200", "203.0.113.1", "198.51.100.128/25", "203.0.113.0/24"},
		{"outside the tunnel", nil, "192.0.2.1", "203.0.113.1", "", ""},
		{"two children", []Pair{low, {selector.Of(p("198.51.100.0/24")), selector.Of(p("203.0.113.192/26"))}},
			"198.51.100.7", "203.0.113.130", "198.51.100.0/24", "203.0.113.128/26"},
		{"a child of other traffic", []Pair{{selector.Of(p("10.0.0.0/8")), selector.Of(p("203.0.113.0/25"))}},
			"198.51.100.7", "203.0.113.1", "198.51.100.0/24", "203.0.113.0/24"},
	}
	for _, c := range cases {
		l, r, ok := AcquirePair(tu, c.children, a(c.src), a(c.dst))
		if (c.l == "") == ok || ok && (l.String() != c.l || r.String() != c.r) {
			t.Errorf("%s: %v %v %v, want %q %q", c.name, l, r, ok, c.l, c.r)
		}
	}
}

// TestAcquireSelectors: without a packet's addresses an acquire proposes
// the whole tunnel, and only for a tunnel that is down; with them,
// AcquirePair's.
func TestAcquireSelectors(t *testing.T) {
	p := func(s string) selector.Selector { return selector.FromPrefix(netip.MustParsePrefix(s)) }
	tu := &Tunnel{LocalSelector: p("198.51.100.0/24"), RemoteSelector: p("203.0.113.0/24")}
	low := Pair{selector.Of(p("198.51.100.0/24")), selector.Of(p("203.0.113.0/25"))}
	var none netip.Addr
	if l, r, ok := AcquireSelectors(tu, []Pair{low}, none, none, true); !ok || l != tu.LocalSelector || r != tu.RemoteSelector {
		t.Errorf("no addresses, tunnel down: %v %v %v, want the tunnel's", l, r, ok)
	}
	if _, _, ok := AcquireSelectors(tu, []Pair{low}, netip.MustParseAddr("198.51.100.1"), none, false); ok {
		t.Error("no destination, tunnel up: a negotiation is wanted")
	}
	l, r, ok := AcquireSelectors(tu, []Pair{low}, netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.200"), false)
	if !ok || l.String() != "198.51.100.0/24" || r.String() != "203.0.113.128/25" {
		t.Errorf("a packet beside the child: %v %v %v, want the other half", l, r, ok)
	}
}
