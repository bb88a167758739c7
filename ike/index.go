package ike

// Index maps a key to a set of values: the IKE daemons' look-ups of their
// SAs and tunnels by endpoint pair or identity, so that an event of one
// peer (an IKE SA completing, an INITIAL_CONTACT, a search for the pair's
// IKE SA) looks at that peer's entries only instead of every entry of the
// daemon: with 10,000 tunnels, each with its own pair, a scan per setup
// made setup cost grow with the number of tunnels. Read it as a map (index
// it, range over it, len); change it with Add and Remove only, which drop
// empty sets. The zero value is empty and ready; it is not safe for
// concurrent use (the daemons guard theirs with their mutex).
type Index[K, V comparable] map[K]map[V]struct{}

// Add puts v into k's set.
func (x *Index[K, V]) Add(k K, v V) {
	if *x == nil {
		*x = Index[K, V]{}
	}
	s := (*x)[k]
	if s == nil {
		s = map[V]struct{}{}
		(*x)[k] = s
	}
	s[v] = struct{}{}
}

// Remove takes v out of k's set, and the set out of the index once empty.
func (x Index[K, V]) Remove(k K, v V) {
	if s := x[k]; s != nil {
		delete(s, v)
		if len(s) == 0 {
			delete(x, k)
		}
	}
}
