package selector

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"strings"
)

// Set is a list of selectors of one family, as one side of a child SA:
// an address matches the set when one of its selectors contains it. IKEv1
// negotiates one selector a side (an ID payload, RFC 2409 §5.5); IKEv2 may
// negotiate several (a TS payload's traffic selectors, RFC 7296 §2.9).
// The zero value is empty and matches nothing. A Set is not modified once
// made; it is safe to read from several goroutines.
type Set []Selector

// Of returns the set of one selector.
func Of(s Selector) Set { return Set{s} }

// Contains reports whether a falls inside one of the set's selectors.
func (s Set) Contains(a netip.Addr) bool {
	for i := range s {
		if s[i].Contains(a) {
			return true
		}
	}
	return false
}

// Within reports whether every selector of the set lies inside outer; an
// empty set does not.
func (s Set) Within(outer Selector) bool {
	for _, x := range s {
		if !x.Within(outer) {
			return false
		}
	}
	return len(s) > 0
}

// Equal reports whether two sets hold the same selectors in the same
// order (a rekeyed child SA has its predecessor's, RFC 7296 §2.8).
func (s Set) Equal(o Set) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

// Is reports whether the set is exactly the one selector x.
func (s Set) Is(x Selector) bool { return len(s) == 1 && s[0] == x }

// String prints the selectors in configuration form, comma-separated.
func (s Set) String() string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = x.String()
	}
	return strings.Join(parts, ", ")
}

// HostBits is how wide the set is: the number of host bits of a prefix
// holding as many addresses (0 for one address, 8 for a /24 or any 256
// addresses, 128 for all of IPv6). The narrower of two sets has fewer.
func (s Set) HostBits() int {
	var hi, lo uint64 // the number of addresses less one, saturating
	var carry uint64
	for i, x := range s {
		h, l := span(x)
		if i > 0 {
			l, carry = bits.Add64(l, 1, 0) // each range holds span+1 addresses
			h, _ = bits.Add64(h, 0, carry)
		}
		lo, carry = bits.Add64(lo, l, 0)
		hi, carry = bits.Add64(hi, h, carry)
		if carry != 0 {
			return 128
		}
	}
	if hi != 0 {
		return 64 + bits.Len64(hi)
	}
	return bits.Len64(lo)
}

// span returns x.To - x.From as a 128-bit number.
func span(x Selector) (hi, lo uint64) {
	a, b := x.From.As16(), x.To.As16()
	ah, al := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	bh, bl := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	lo, borrow := bits.Sub64(bl, al, 0)
	hi, _ = bits.Sub64(bh, ah, borrow)
	return hi, lo
}

// Within reports whether s lies inside outer.
func (s Selector) Within(outer Selector) bool {
	return s.Valid() && outer.Contains(s.From) && outer.Contains(s.To)
}

// Overlaps reports whether s and o have an address in common.
func (s Selector) Overlaps(o Selector) bool {
	return s.From.Is4() == o.From.Is4() && !s.To.Less(o.From) && !o.To.Less(s.From)
}

// Span returns the selector of the inclusive range from..to in its
// simplest form: an address, a subnet when the range is a whole prefix,
// else a range. It returns the zero Selector for a range that is not one.
func Span(from, to netip.Addr) Selector {
	if from == to && from.IsValid() {
		return Host(from)
	}
	s, err := FromRange(from, to)
	if err != nil {
		return Selector{}
	}
	if p, ok := s.Prefix(); ok {
		return FromPrefix(p)
	}
	return s
}

// Gap returns the widest part of in that contains a and overlaps no
// selector of taken: in itself when nothing of it is taken, else the range
// between the taken selectors nearest a on either side. It returns false
// when a is outside in or inside taken.
func (s Selector) Gap(a netip.Addr, taken Set) (Selector, bool) {
	if !s.Contains(a) || taken.Contains(a) {
		return Selector{}, false
	}
	from, to := s.From, s.To
	cut := false
	for _, x := range taken {
		if !x.Overlaps(Selector{From: from, To: to}) {
			continue
		}
		cut = true
		if x.To.Less(a) {
			from = x.To.Next()
		} else {
			to = x.From.Prev()
		}
	}
	if !cut {
		return s, true
	}
	return Span(from, to), true
}
