package v1

import "github.com/ismgw/ism/ike"

// pairIndex holds the IKE SAs of Daemon.sas and the child SAs of
// Daemon.children by endpoint pair, so that an event of one pair (a phase
// 1 completing, an INITIAL-CONTACT, an acquire looking for an IKE SA)
// looks at that pair's SAs only instead of every SA of the daemon: with
// 10,000 tunnels, each with its own pair, a scan per setup made setup cost
// grow with the number of tunnels. Daemon.mu guards it; the zero value is
// empty and ready.
type pairIndex struct {
	sas      ike.Index[peerKey, *ikeSA]
	children ike.Index[peerKey, *childSA]
}

// childPair is a child SA's endpoint pair: its inbound SA's destination is
// this end, its outbound SA's the peer.
func childPair(c *childSA) peerKey { return peerKey{c.in.Dst, c.out.Dst} }

// putSALocked enters sa into Daemon.sas and the index. Daemon.mu must be
// held.
func (d *Daemon) putSALocked(sa *ikeSA) {
	d.sas[sa.key()] = sa
	d.pairs.sas.Add(sa.peer(), sa)
}

// deleteSALocked takes sa out of Daemon.sas and the index. Daemon.mu must
// be held.
func (d *Daemon) deleteSALocked(sa *ikeSA) {
	delete(d.sas, sa.key())
	d.pairs.sas.Remove(sa.peer(), sa)
}

// putChildLocked enters c into Daemon.children (by both SAIDs) and the
// index. Daemon.mu must be held.
func (d *Daemon) putChildLocked(c *childSA) {
	d.children[c.in] = c
	d.children[c.out] = c
	d.pairs.children.Add(childPair(c), c)
}

// deleteChildLocked takes c out of Daemon.children and the index.
// Daemon.mu must be held.
func (d *Daemon) deleteChildLocked(c *childSA) {
	delete(d.children, c.in)
	delete(d.children, c.out)
	d.pairs.children.Remove(childPair(c), c)
}
