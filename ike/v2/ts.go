package v2

import (
	"net/netip"

	"github.com/ismgw/ism/selector"
)

// Traffic selectors (RFC 7296 §2.9, §3.13). A JUNOSe selector is an
// address, subnet or range of one family with every protocol and port;
// IKEv2 carries each as one address range. As responder this end narrows
// the peer's proposal to its own selectors (§2.9: the intersection); a
// selector limited to a protocol or ports is one this end's tunnels
// cannot carry, so it is not chosen.

// allPorts is the port range of a selector without ports.
const allPorts = 65535

// selectorTS returns the traffic selector of a tunnel selector.
func selectorTS(s selector.Selector) TrafficSelector {
	return TrafficSelector{StartPort: 0, EndPort: allPorts, Start: s.From, End: s.To}
}

// tsPayload returns a TS payload of one selector.
func tsPayload(s selector.Selector) []byte {
	return (&TS{Selectors: []TrafficSelector{selectorTS(s)}}).marshal()
}

// tsSelector returns the tunnel selector of an address range: an
// address, a subnet when the range is one, or a range.
func tsSelector(from, to netip.Addr) selector.Selector {
	if from == to {
		return selector.Host(from)
	}
	s, err := selector.FromRange(from, to)
	if err != nil {
		return selector.Selector{}
	}
	if p, ok := s.Prefix(); ok {
		return selector.FromPrefix(p)
	}
	return s
}

// carried reports whether a traffic selector is one a tunnel selector
// can be: every protocol, every port, a valid range.
func carried(t TrafficSelector) bool {
	return t.Protocol == 0 && t.StartPort == 0 && t.EndPort == allPorts &&
		t.Start.IsValid() && t.End.IsValid() && t.Start.Is4() == t.End.Is4() && !t.End.Less(t.Start)
}

// narrow intersects the peer's selectors with this end's and returns the
// first non-empty intersection (§2.9).
func narrow(mine selector.Selector, theirs []TrafficSelector) (selector.Selector, bool) {
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
		if !to.Less(from) {
			return tsSelector(from, to), true
		}
	}
	return selector.Selector{}, false
}

// within returns the responder's narrowed selector if it lies inside this
// end's proposal, as §2.9 requires of a responder.
func within(mine selector.Selector, got []TrafficSelector) (selector.Selector, bool) {
	if len(got) == 0 || !carried(got[0]) {
		return selector.Selector{}, false
	}
	t := got[0]
	if !mine.Contains(t.Start) || !mine.Contains(t.End) {
		return selector.Selector{}, false
	}
	return tsSelector(t.Start, t.End), true
}
