package ike

import "iter"

// Index maps a key to a set of values: the IKE daemons' look-ups of their
// SAs and tunnels by endpoint pair or identity, so that an event of one
// peer (an IKE SA completing, an INITIAL_CONTACT, a search for the pair's
// IKE SA) looks at that peer's entries only instead of every entry of the
// daemon: with 10,000 tunnels, each with its own pair, a scan per setup
// made setup cost grow with the number of tunnels. A key with one value,
// the common case, costs one map entry (about 70 bytes, against 250 for a
// set of its own). The zero value is empty and ready; it is not safe for
// concurrent use (the daemons guard theirs with their mutex).
type Index[K, V comparable] struct {
	one  map[K]V              // keys with one value
	many map[K]map[V]struct{} // keys with two or more
}

// Add puts v into k's set.
func (x *Index[K, V]) Add(k K, v V) {
	if s := x.many[k]; s != nil {
		s[v] = struct{}{}
		return
	}
	o, ok := x.one[k]
	switch {
	case !ok:
		if x.one == nil {
			x.one = map[K]V{}
		}
		x.one[k] = v
	case o != v:
		if x.many == nil {
			x.many = map[K]map[V]struct{}{}
		}
		x.many[k] = map[V]struct{}{o: {}, v: {}}
		delete(x.one, k)
	}
}

// Remove takes v out of k's set.
func (x *Index[K, V]) Remove(k K, v V) {
	if o, ok := x.one[k]; ok {
		if o == v {
			delete(x.one, k)
		}
		return
	}
	s := x.many[k]
	if _, ok := s[v]; !ok {
		return
	}
	delete(s, v)
	if len(s) == 1 {
		delete(x.many, k)
		for o := range s {
			x.one[k] = o
		}
	}
}

// Has reports whether v is in k's set.
func (x *Index[K, V]) Has(k K, v V) bool {
	if o, ok := x.one[k]; ok {
		return o == v
	}
	_, ok := x.many[k][v]
	return ok
}

// Get yields the values of k's set, in no order. The index must not
// change while it runs.
func (x *Index[K, V]) Get(k K) iter.Seq[V] {
	return func(yield func(V) bool) {
		if o, ok := x.one[k]; ok {
			yield(o)
			return
		}
		for v := range x.many[k] {
			if !yield(v) {
				return
			}
		}
	}
}

// All yields every key and value, in no order. The index must not change
// while it runs.
func (x *Index[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for k, v := range x.one {
			if !yield(k, v) {
				return
			}
		}
		for k, s := range x.many {
			for v := range s {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// Keys returns how many keys have a value.
func (x *Index[K, V]) Keys() int { return len(x.one) + len(x.many) }
