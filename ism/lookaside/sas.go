package lookaside

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/selector"
)

// A signaled tunnel may hold several child SA pairs, each with selectors
// of its own inside the tunnel's (a peer that narrows, or adds SAs for
// parts of the tunnel's traffic). An outbound packet takes the narrowest
// SA whose selectors contain it; an inbound packet must be inside the
// selectors of the SA it came on. The tables below are what the packet
// path reads: built under path.mu when an SA comes or goes, published
// whole, never changed after. A tunnel with one SA pair of its own
// selectors (every manual tunnel, most signaled ones) costs what one SA
// did: the first outbound entry takes every packet, and there is no
// inbound table.

// saEntry is an SA of a path with what the packet path needs of it.
type saEntry struct {
	sa *offload.SA
	// sock is the transport socket the SA's packets leave by (outbound),
	// and how what show says of it.
	sock *transport.Socket
	how  string // empty for a UDP socket: udpHow says it, made when shown
	port uint16 // the UDP socket's port
	// width orders outbound SAs, narrowest first: their selectors' host
	// bits (the tunnel's SAs: the most there are); seq, the newest first
	// of equal width. (Beside port: an entry fits 64 bytes,
	// TestEntrySize.)
	width int32
	seq   uint64
	// sel are the SA's own selectors; nil when it has the tunnel's (most
	// SAs: an entry stays small, and a path holds each twice).
	sel *narrow
	// held is set, on an outbound SA, while packets held before it came
	// wait for their release (hold.go): the packets it takes queue
	// behind them.
	held *atomic.Bool
}

// narrow holds an SA's own selectors. local4 and remote4 are the same as
// IPv4 ranges when every selector is IPv4 (v4): the packet path compares
// integers.
type narrow struct {
	local, remote   selector.Set
	local4, remote4 []span4
	v4              bool
}

// span4 is a selector as a range of IPv4 addresses.
type span4 struct{ from, to uint32 }

// setSelectors gives the SA selectors of its own, and orders it by their
// width.
func (e *saEntry) setSelectors(local, remote selector.Set) {
	e.width = int32(local.HostBits() + remote.HostBits())
	if local == nil && remote == nil {
		e.sel = nil
		return
	}
	n := &narrow{local: local, remote: remote, v4: true}
	e.sel = n
	for _, side := range []struct {
		set selector.Set
		out *[]span4
	}{{local, &n.local4}, {remote, &n.remote4}} {
		for _, x := range side.set {
			if !x.From.Is4() || !x.To.Is4() {
				n.local4, n.remote4, n.v4 = nil, nil, false
				return
			}
			*side.out = append(*side.out, span4{u32(x.From), u32(x.To)})
		}
	}
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func in4(spans []span4, a uint32) bool {
	for _, s := range spans {
		if a >= s.from && a <= s.to {
			return true
		}
	}
	return false
}

// narrowed reports whether the SA has selectors of its own.
func (e *saEntry) narrowed() bool { return e.sel != nil }

// selectors returns the SA's own selectors; nil when it has the tunnel's.
func (e *saEntry) selectors() (local, remote selector.Set) {
	if e.sel == nil {
		return nil, nil
	}
	return e.sel.local, e.sel.remote
}

// covers reports whether an outbound packet from src to dst fits the SA:
// the packet is inside the tunnel's selectors already.
func (e *saEntry) covers(src, dst netip.Addr) bool {
	n := e.sel
	switch {
	case n == nil:
		return true
	case n.v4:
		return src.Is4() && dst.Is4() && in4(n.local4, u32(src)) && in4(n.remote4, u32(dst))
	}
	return n.local.Contains(src) && n.remote.Contains(dst)
}

// sameSelectors reports whether two SAs carry the same traffic (one
// replaces the other in a rekey).
func (e *saEntry) sameSelectors(o *saEntry) bool {
	l, r := e.selectors()
	ol, or := o.selectors()
	return l.Equal(ol) && r.Equal(or)
}

// tunnelWidth is the width of an SA with the tunnel's selectors: wider
// than any narrowed one.
const tunnelWidth = 1 << 16

// outTable is a path's outbound SAs in the order packets try them. The
// zero value has none.
type outTable struct {
	sas []saEntry
}

// pick returns the SA a packet from src to dst takes, or nil.
func (t *outTable) pick(src, dst netip.Addr) *saEntry {
	for i := range t.sas {
		if e := &t.sas[i]; e.covers(src, dst) {
			return e
		}
	}
	return nil
}

// first returns the SA most packets take, for show, or nil.
func (t *outTable) first() *saEntry {
	if len(t.sas) == 0 {
		return nil
	}
	return &t.sas[len(t.sas)-1]
}

// newOutTable orders outbound SAs: narrowest first, newest first of equal
// width. It shares outs when they are in that order already (one SA, the
// usual case), so the caller never changes outs' array in place.
func newOutTable(outs []saEntry) *outTable {
	if slices.IsSortedFunc(outs, pickOrder) {
		return &outTable{sas: outs}
	}
	t := &outTable{sas: slices.Clone(outs)}
	slices.SortStableFunc(t.sas, pickOrder)
	return t
}

// pickOrder orders outbound SAs as packets try them.
func pickOrder(a, b saEntry) int {
	if c := cmp.Compare(a.width, b.width); c != 0 {
		return c
	}
	return cmp.Compare(b.seq, a.seq)
}

// inTable holds a path's inbound SAs with selectors of their own; nil when
// it has none, so that the packet path skips it.
type inTable struct {
	sas []saEntry
}

// admits reports whether a packet from src to dst that arrived on sa is
// inside its selectors.
func (t *inTable) admits(sa *offload.SA, src, dst netip.Addr) bool {
	for i := range t.sas {
		if e := &t.sas[i]; e.sa == sa {
			return e.covers(dst, src)
		}
	}
	return true
}

// newInTable returns the table of the narrowed inbound SAs, nil if none.
func newInTable(ins []saEntry) *inTable {
	var t *inTable
	for _, e := range ins {
		if e.narrowed() {
			if t == nil {
				t = &inTable{}
			}
			t.sas = append(t.sas, e)
		}
	}
	return t
}
