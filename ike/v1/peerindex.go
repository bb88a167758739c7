package v1

import "slices"

// pairIndex holds the IKE SAs of Daemon.sas and the child SAs of
// Daemon.children by endpoint pair, so that an event of one pair (a phase
// 1 completing, an INITIAL-CONTACT, an acquire looking for an IKE SA)
// looks at that pair's SAs only instead of every SA of the daemon: with
// 10,000 tunnels, each with its own pair, a scan per setup made setup cost
// grow with the number of tunnels. Daemon.mu guards it; the zero value is
// empty and ready.
type pairIndex struct {
	sas      map[peerKey][]*ikeSA
	children map[peerKey][]*childSA
}

// A pair has one IKE SA and one child SA most of the time, two during a
// rekey: a short slice each, where a set was a map of its own.
func addTo[T comparable](m *map[peerKey][]T, k peerKey, v T) {
	if *m == nil {
		*m = map[peerKey][]T{}
	}
	s := (*m)[k]
	if !slices.Contains(s, v) {
		(*m)[k] = append(s, v)
	}
}

func removeFrom[T comparable](m map[peerKey][]T, k peerKey, v T) {
	s := m[k]
	i := slices.Index(s, v)
	switch {
	case i < 0:
	case len(s) == 1:
		delete(m, k)
	default:
		m[k] = slices.Delete(s, i, i+1)
	}
}

// childPair is a child SA's endpoint pair: its inbound SA's destination is
// this end, its outbound SA's the peer.
func childPair(c *childSA) peerKey { return peerKey{c.in.Dst, c.out.Dst} }

// putSALocked enters sa into Daemon.sas and the index. Daemon.mu must be
// held.
func (d *Daemon) putSALocked(sa *ikeSA) {
	d.sas[sa.key()] = sa
	addTo(&d.pairs.sas, sa.peer(), sa)
}

// deleteSALocked takes sa out of Daemon.sas and the index. Daemon.mu must
// be held.
func (d *Daemon) deleteSALocked(sa *ikeSA) {
	delete(d.sas, sa.key())
	removeFrom(d.pairs.sas, sa.peer(), sa)
}

// putChildLocked enters c into Daemon.children (by both SAIDs) and the
// index. Daemon.mu must be held.
func (d *Daemon) putChildLocked(c *childSA) {
	d.children[c.in] = c
	d.children[c.out] = c
	addTo(&d.pairs.children, childPair(c), c)
}

// deleteChildLocked takes c out of Daemon.children and the index.
// Daemon.mu must be held.
func (d *Daemon) deleteChildLocked(c *childSA) {
	delete(d.children, c.in)
	delete(d.children, c.out)
	removeFrom(d.pairs.children, childPair(c), c)
}
