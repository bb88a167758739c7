// Package selector holds IPsec traffic selectors as JUNOSe has them: an IP
// address, a subnet or an address range (RFC 4301 §4.4.1.1). A secure tunnel
// applies its local and remote selectors to the traffic that enters and
// leaves it; IKE carries them as identification payloads (RFC 2407 §4.6.2).
package selector

import (
	"errors"
	"fmt"
	"net/netip"
)

// Kind is the form of a selector.
type Kind uint8

// Kinds.
const (
	Any     Kind = iota // every address of the family
	Address             // one address
	Subnet              // a prefix
	Range               // an inclusive address range
)

// Selector is an address, subnet or range. The zero value matches nothing
// valid; use Parse, or the constructors. Selectors are comparable.
type Selector struct {
	Kind     Kind
	From, To netip.Addr // inclusive bounds; equal for Address
	Bits     int        // prefix length for Subnet
}

// Host returns a selector for one address.
func Host(a netip.Addr) Selector { return Selector{Kind: Address, From: a, To: a} }

// FromPrefix returns a selector for a subnet.
func FromPrefix(p netip.Prefix) Selector {
	p = p.Masked()
	return Selector{Kind: Subnet, From: p.Addr(), To: lastAddr(p), Bits: p.Bits()}
}

// FromRange returns a selector for the inclusive range from..to.
func FromRange(from, to netip.Addr) (Selector, error) {
	if !from.IsValid() || !to.IsValid() || from.Is4() != to.Is4() {
		return Selector{}, errors.New("selector: range bounds must be addresses of one family")
	}
	if to.Less(from) {
		return Selector{}, fmt.Errorf("selector: range %s to %s is backwards", from, to)
	}
	return Selector{Kind: Range, From: from, To: to}, nil
}

// AnyOf returns the selector for every address of a's family.
func AnyOf(a netip.Addr) Selector {
	if a.Is4() {
		return Selector{Kind: Any, From: netip.IPv4Unspecified(), To: netip.AddrFrom4([4]byte{255, 255, 255, 255}), Bits: 0}
	}
	return Selector{Kind: Any, From: netip.IPv6Unspecified(), To: netip.AddrFrom16([16]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Valid reports whether s is a usable selector.
func (s Selector) Valid() bool {
	return s.From.IsValid() && s.To.IsValid() && s.From.Is4() == s.To.Is4() && !s.To.Less(s.From)
}

// Is6 reports whether s is an IPv6 selector.
func (s Selector) Is6() bool { return s.From.Is6() }

// Contains reports whether a falls inside s.
func (s Selector) Contains(a netip.Addr) bool {
	if a.Is4() != s.From.Is4() {
		return false
	}
	return !a.Less(s.From) && !s.To.Less(a)
}

// Prefix returns the selector as a prefix when it is one (an address, a
// subnet, or a range that happens to be a whole prefix).
func (s Selector) Prefix() (netip.Prefix, bool) {
	for bits := 0; bits <= s.From.BitLen(); bits++ {
		p, err := s.From.Prefix(bits)
		if err == nil && p.Addr() == s.From && lastAddr(p) == s.To {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// String prints the selector in configuration form: "198.51.100.7",
// "198.51.100.0/25", "range 203.0.113.10 203.0.113.50" or "any".
func (s Selector) String() string {
	switch s.Kind {
	case Any:
		return "any"
	case Address:
		return s.From.String()
	case Subnet:
		return fmt.Sprintf("%s/%d", s.From, s.Bits)
	}
	return fmt.Sprintf("range %s %s", s.From, s.To)
}
