package v1

import (
	"hash/maphash"
	"iter"

	"github.com/ismgw/ism/ipsec"
)

// pairIndex holds the IKE SAs of Daemon.sas and the child SAs of
// Daemon.children by endpoint pair, so that an event of one pair (a phase
// 1 completing, an INITIAL-CONTACT, an acquire looking for an IKE SA)
// looks at that pair's SAs only instead of every SA of the daemon: with
// 10,000 tunnels, each with its own pair, a scan per setup made setup cost
// grow with the number of tunnels. A pair's IKE SAs and child SAs share
// one map entry, under the hash of the pair (an 8-byte key where the pair
// is 48: sasOf and childrenOf filter out another pair with the same
// hash), and a pair with one of each (the common case) needs nothing
// else. Daemon.mu guards it; the zero value is empty and ready.
type pairIndex struct {
	m    map[uint64]pairEntry
	seed maphash.Seed // made at the first use
}

// key returns the map key of a pair.
func (x *pairIndex) key(k peerKey) uint64 {
	if x.seed == (maphash.Seed{}) {
		x.seed = maphash.MakeSeed()
	}
	return maphash.Comparable(x.seed, k)
}

// pairEntry is a pair's SAs: sa and child when it has at most one of a
// kind, more's sets from two on.
type pairEntry struct {
	sa    *ikeSA
	child *childSA
	more  *pairSets
}

// pairSets are the sets of a pair with two or more SAs of a kind; a set is
// nil while the pair has fewer.
type pairSets struct {
	sas      map[*ikeSA]struct{}
	children map[*childSA]struct{}
}

// childPair is a child SA's endpoint pair: its inbound SA's destination is
// this end, its outbound SA's the peer.
func childPair(c *childSA) peerKey { return peerKey{c.in.Dst, c.out.Dst} }

// putSALocked enters sa into Daemon.sas and the index. Daemon.mu must be
// held.
func (d *Daemon) putSALocked(sa *ikeSA) {
	d.sas[sa.key()] = sa
	file(&d.pairs, sa.peer(), sa, true, entrySA, setSAs)
}

// deleteSALocked takes sa out of Daemon.sas and the index. Daemon.mu must
// be held.
func (d *Daemon) deleteSALocked(sa *ikeSA) {
	delete(d.sas, sa.key())
	file(&d.pairs, sa.peer(), sa, false, entrySA, setSAs)
}

// putChildLocked enters c into Daemon.children (by both SAIDs) and the
// index. Daemon.mu must be held.
func (d *Daemon) putChildLocked(c *childSA) {
	d.children.Add(d.saidHash(c.in), c)
	d.children.Add(d.saidHash(c.out), c)
	file(&d.pairs, childPair(c), c, true, entryChild, setChildren)
}

// deleteChildLocked takes c out of Daemon.children and the index.
// Daemon.mu must be held.
func (d *Daemon) deleteChildLocked(c *childSA) {
	d.children.Remove(d.saidHash(c.in), c)
	d.children.Remove(d.saidHash(c.out), c)
	file(&d.pairs, childPair(c), c, false, entryChild, setChildren)
}

// The fields of an entry and of its sets that hold each kind of SA.
func entrySA(e *pairEntry) **ikeSA                   { return &e.sa }
func setSAs(s *pairSets) *map[*ikeSA]struct{}        { return &s.sas }
func entryChild(e *pairEntry) **childSA              { return &e.child }
func setChildren(s *pairSets) *map[*childSA]struct{} { return &s.children }

// file adds v to (add) or takes it out of a pair's SAs of its kind, which
// one and many locate in the pair's entry.
func file[V comparable](x *pairIndex, pair peerKey, v V, add bool, one func(*pairEntry) *V, many func(*pairSets) *map[V]struct{}) {
	k := x.key(pair)
	e, ok := x.m[k]
	if !add && !ok {
		return
	}
	var zero V
	if o := *one(&e); add && e.more == nil && o != zero && o != v {
		e.more = new(pairSets)
	}
	var none map[V]struct{}
	set := &none
	if e.more != nil {
		set = many(e.more)
	}
	if add {
		put(one(&e), set, v)
	} else {
		drop(one(&e), set, v)
	}
	x.store(k, e)
}

// saidHash is the key of an SA in Daemon.children.
func (d *Daemon) saidHash(id ipsec.SAID) uint64 { return maphash.Comparable(d.seed, id) }

// childLocked returns the child SA with an inbound or outbound SA id, or
// nil. Daemon.mu must be held.
func (d *Daemon) childLocked(id ipsec.SAID) *childSA {
	for c := range d.children.Get(d.saidHash(id)) {
		if c.in == id || c.out == id { // not another SA with the same hash
			return c
		}
	}
	return nil
}

// store writes a pair's entry back, or takes the pair out when it has no
// SA left.
func (x *pairIndex) store(k uint64, e pairEntry) {
	if e.more != nil && e.more.sas == nil && e.more.children == nil {
		e.more = nil
	}
	if e == (pairEntry{}) {
		delete(x.m, k)
		return
	}
	if x.m == nil {
		x.m = map[uint64]pairEntry{}
	}
	x.m[k] = e
}

// sasOf yields the IKE SAs of a pair, in no order. The index must not
// change while it runs.
func (x *pairIndex) sasOf(k peerKey) iter.Seq[*ikeSA] {
	e := x.m[x.key(k)]
	var many map[*ikeSA]struct{}
	if e.more != nil {
		many = e.more.sas
	}
	return func(yield func(*ikeSA) bool) {
		for sa := range members(e.sa, many) {
			if sa.peer() == k && !yield(sa) { // not another pair's
				return
			}
		}
	}
}

// childrenOf yields the child SAs of a pair, in no order. The index must
// not change while it runs.
func (x *pairIndex) childrenOf(k peerKey) iter.Seq[*childSA] {
	e := x.m[x.key(k)]
	var many map[*childSA]struct{}
	if e.more != nil {
		many = e.more.children
	}
	return func(yield func(*childSA) bool) {
		for c := range members(e.child, many) {
			if childPair(c) == k && !yield(c) { // not another pair's
				return
			}
		}
	}
}

// put adds v to a set held as one value, or from two values on as a map:
// the caller passes a map it can keep when one may be needed.
func put[V comparable](one *V, many *map[V]struct{}, v V) {
	var zero V
	switch {
	case *many != nil:
		(*many)[v] = struct{}{}
	case *one == zero:
		*one = v
	case *one != v:
		*many = map[V]struct{}{*one: {}, v: {}}
		*one = zero
	}
}

// drop takes v out of a set that put fills; a map left with one value
// goes back to one.
func drop[V comparable](one *V, many *map[V]struct{}, v V) {
	var zero V
	if *many == nil {
		if *one == v {
			*one = zero
		}
		return
	}
	delete(*many, v)
	if len(*many) == 1 {
		for o := range *many {
			*one = o
		}
		*many = nil
	}
}

// members yields the values of a set that put fills.
func members[V comparable](one V, many map[V]struct{}) iter.Seq[V] {
	return func(yield func(V) bool) {
		var zero V
		if many == nil {
			if one != zero {
				yield(one)
			}
			return
		}
		for v := range many {
			if !yield(v) {
				return
			}
		}
	}
}
