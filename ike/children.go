package ike

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/ismgw/ism/selector"
)

// A tunnel may hold several child SA pairs, each with selectors of its own
// inside the tunnel's: the peer narrowed them (IKEv2, RFC 7296 §2.9) or
// negotiated more for parts of the tunnel's traffic. The data path sends a
// packet on the narrowest pair that covers it. A packet none covers asks
// for a new pair (an acquire), whose selectors are chosen here, the same
// way for both IKE versions.

// Pair is a child SA's selectors: this end's and the peer's.
type Pair struct {
	Local, Remote selector.Set
}

// Covers reports whether traffic from src to dst is inside the pair.
func (p Pair) Covers(src, dst netip.Addr) bool {
	return p.Local.Contains(src) && p.Remote.Contains(dst)
}

// Equal reports whether two pairs are the same selectors.
func (p Pair) Equal(o Pair) bool { return p.Local.Equal(o.Local) && p.Remote.Equal(o.Remote) }

// AcquirePair returns the selectors an acquire for a packet from src to dst
// proposes in tunnel t, whose child SAs have the pairs children: the
// widest part of the tunnel's selectors around the packet that overlaps
// none of them. A tunnel without child SAs proposes its whole selectors,
// as strongSwan's trap policies do (one SA for the tunnel's traffic, not
// one per flow); a tunnel that has some proposes what they leave, so that
// the new SA is refused neither by a peer whose configuration ends where
// an existing SA's selectors do, nor shadows traffic the older SAs carry.
// A pair is cut where it overlaps a child: on the remote side when the
// child's remote selectors do not hold dst, else on the local side. ok is
// false when the tunnel's selectors do not hold the packet, or a child
// already covers it.
func AcquirePair(t *Tunnel, children []Pair, src, dst netip.Addr) (local, remote selector.Selector, ok bool) {
	local, remote = t.LocalSelector, t.RemoteSelector
	if !local.Contains(src) || !remote.Contains(dst) {
		return local, remote, false
	}
	for _, c := range children {
		if !overlaps(local, c.Local) || !overlaps(remote, c.Remote) {
			continue
		}
		switch {
		case !c.Remote.Contains(dst):
			remote, _ = remote.Gap(dst, c.Remote)
		case !c.Local.Contains(src):
			local, _ = local.Gap(src, c.Local)
		default:
			return local, remote, false
		}
	}
	return local, remote, true
}

// AcquireSelectors returns the selectors an acquire proposes in tunnel t,
// whose child SAs have the pairs children: AcquirePair's for a packet from
// src to dst; without a packet's addresses (either invalid), the tunnel's
// whole selectors, wanted only when the tunnel is down. ok is false when
// no negotiation is wanted.
func AcquireSelectors(t *Tunnel, children []Pair, src, dst netip.Addr, down bool) (local, remote selector.Selector, ok bool) {
	if src.IsValid() && dst.IsValid() {
		return AcquirePair(t, children, src, dst)
	}
	return t.LocalSelector, t.RemoteSelector, down
}

// overlaps reports whether s has an address in common with a selector of
// the set.
func overlaps(s selector.Selector, set selector.Set) bool {
	for _, x := range set {
		if s.Overlaps(x) {
			return true
		}
	}
	return false
}

// SortNegotiations orders negotiations by their selectors, so that show
// lists them the same way each time.
func SortNegotiations(ns []NegotiationStatus) {
	slices.SortStableFunc(ns, func(a, b NegotiationStatus) int {
		return cmp.Or(cmp.Compare(a.Local.String(), b.Local.String()), cmp.Compare(a.Remote.String(), b.Remote.String()))
	})
}
