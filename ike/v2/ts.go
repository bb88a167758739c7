package v2

import (
	"net/netip"

	"github.com/ismgw/ism/selector"
)

// Traffic selectors (RFC 7296 §2.9, §3.13). A JUNOSe selector is an
// address, subnet or range of one family with every protocol and port;
// IKEv2 carries each as one address range, and a child SA's side as one
// or more (selector.Set). As responder this end narrows the peer's
// proposal to its tunnel's selectors (§2.9: the intersection, every
// non-empty part of it); a traffic selector limited to a protocol or ports
// is one this end's tunnels cannot carry, so it is not chosen. As
// initiator of an acquire it puts the packet's addresses first, which a
// narrowing responder uses to pick the policy that holds the packet.

// allPorts is the port range of a selector without ports.
const allPorts = 65535

// selectorTS returns the traffic selector of a tunnel selector.
func selectorTS(s selector.Selector) TrafficSelector {
	return TrafficSelector{StartPort: 0, EndPort: allPorts, Start: s.From, End: s.To}
}

// tsPayload returns a TS payload of a set's selectors, after first (the
// address of the packet that asked for the child SA, §2.9) when it is
// valid.
func tsPayload(first netip.Addr, s selector.Set) []byte {
	ts := &TS{}
	if first.IsValid() {
		ts.Selectors = append(ts.Selectors, selectorTS(selector.Host(first)))
	}
	for _, x := range s {
		ts.Selectors = append(ts.Selectors, selectorTS(x))
	}
	return ts.marshal()
}

// tsSelector returns the tunnel selector of an address range: an
// address, a subnet when the range is one, or a range.
func tsSelector(from, to netip.Addr) selector.Selector { return selector.Span(from, to) }

// carried reports whether a traffic selector is one a tunnel selector
// can be: every protocol, every port, a valid range.
func carried(t TrafficSelector) bool {
	return t.Protocol == 0 && t.StartPort == 0 && t.EndPort == allPorts &&
		t.Start.IsValid() && t.End.IsValid() && t.Start.Is4() == t.End.Is4() && !t.End.Less(t.Start)
}

// hint returns the address of the packet that started the peer's
// negotiation: its first traffic selector when that is one address and a
// later one holds it (§2.9).
func hint(theirs []TrafficSelector) (netip.Addr, bool) {
	if len(theirs) < 2 || !carried(theirs[0]) || theirs[0].Start != theirs[0].End {
		return netip.Addr{}, false
	}
	a := theirs[0].Start
	for _, t := range theirs[1:] {
		if carried(t) && t.Start.Is4() == a.Is4() && !a.Less(t.Start) && !t.End.Less(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// narrow intersects the peer's traffic selectors with this end's selector
// (§2.9) and returns every non-empty intersection, once each. A packet's
// address the peer put first (hint) only chooses: the broader selector
// after it is the one narrowed.
func narrow(mine selector.Selector, theirs []TrafficSelector) (selector.Set, bool) {
	if _, ok := hint(theirs); ok {
		theirs = theirs[1:]
	}
	var out selector.Set
	for _, t := range theirs {
		if !carried(t) || t.Start.Is4() != mine.From.Is4() {
			continue
		}
		from, to := t.Start, t.End
		if from.Less(mine.From) {
			from = mine.From
		}
		if mine.To.Less(to) {
			to = mine.To
		}
		if to.Less(from) {
			continue
		}
		s := tsSelector(from, to)
		if len(out) == 0 || !out.Contains(s.From) || !out.Contains(s.To) {
			out = append(out, s)
		}
	}
	return out, len(out) > 0
}

// within returns the responder's narrowed traffic selectors if every one
// lies inside one of this end's proposal, as §2.9 requires of a responder.
func within(mine selector.Set, got []TrafficSelector) (selector.Set, bool) {
	var out selector.Set
	for _, t := range got {
		if !carried(t) || !inSet(mine, t.Start, t.End) {
			return nil, false
		}
		out = append(out, tsSelector(t.Start, t.End))
	}
	return out, len(out) > 0
}

// inSet reports whether one selector of s holds the range from..to.
func inSet(s selector.Set, from, to netip.Addr) bool {
	for _, x := range s {
		if x.Contains(from) && x.Contains(to) {
			return true
		}
	}
	return false
}
