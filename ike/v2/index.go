package v2

import (
	"hash/maphash"
	"iter"
	"net/netip"
	"slices"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// endpointPair is what the daemon's indexes file IKE SAs and tunnels
// under: this end's address and the peer's (ports aside: a NAT-T float
// changes them, not the pair).
type endpointPair struct{ local, remote netip.Addr }

// sourceID files a tunnel that names its peer's identity: its source and
// the identity in its folded form.
type sourceID struct {
	local netip.Addr
	id    ike.Identity
}

// indexes find the IKE SAs and tunnels of one peer without a walk over
// all of them (issue 13: with 10,000 tunnels, each with its own endpoint
// pair, a walk per setup made its cost grow with the number of tunnels).
// Daemon.mu guards them; the zero value is empty and ready.
type indexes struct {
	// sas files Daemon.sas by endpoint pair, under its hash (pairHash: 8
	// bytes a key, not 48; sasAt filters).
	sas   ike.Index[uint64, *ikeSA]
	peers map[netip.Addr]int // how many of Daemon.sas have each peer address
	// tunnels files each tunnel under its source and every address it
	// may use: its destination, its backup destination and the peer it
	// learned (tunnel.endpoints), by the pair's hash; ids, under the hash
	// of its source and remote identity when it names one (idHash: 8
	// bytes a key, not 72).
	tunnels ike.Index[uint64, *tunnel]
	ids     ike.Index[uint64, *tunnel]
	// sels files each tunnel by its selectors and the ways it names its
	// peer (index_sel.go), under hashes made with seed.
	sels ike.Index[uint64, *tunnel]
	seed maphash.Seed
}

func (sa *ikeSA) pair() endpointPair { return endpointPair{sa.local.Addr(), sa.remote.Addr()} }

// pairHash is where the indexes file an endpoint pair. Daemon.mu must be
// held.
func (d *Daemon) pairHash(p endpointPair) uint64 { return maphash.Comparable(d.hashSeed(), p) }

// sasAt yields the IKE SAs between two endpoints, in no order. Daemon.mu
// must be held while it runs.
func (d *Daemon) sasAt(p endpointPair) iter.Seq[*ikeSA] {
	return func(yield func(*ikeSA) bool) {
		for sa := range d.idx.sas.Get(d.pairHash(p)) {
			if sa.pair() == p && !yield(sa) { // not another pair with the same hash
				return
			}
		}
	}
}

// putSALocked enters sa into Daemon.sas, by this end's SPI, and the
// indexes. Daemon.mu must be held.
func (d *Daemon) putSALocked(sa *ikeSA) {
	d.sas[sa.localSPI()] = sa
	d.indexSALocked(sa)
}

// deleteSALocked takes sa out of Daemon.sas and the indexes, if it is
// there. Daemon.mu must be held.
func (d *Daemon) deleteSALocked(sa *ikeSA) {
	if d.sas[sa.localSPI()] == sa {
		delete(d.sas, sa.localSPI())
	}
	d.unindexSALocked(sa)
}

// indexSALocked files the SA under its endpoints, which change only
// through moveSALocked while it is filed.
func (d *Daemon) indexSALocked(sa *ikeSA) {
	if sa.filed {
		return
	}
	sa.filed = true
	k := sa.pair()
	d.idx.sas.Add(d.pairHash(k), sa)
	if d.idx.peers == nil {
		d.idx.peers = map[netip.Addr]int{}
	}
	d.idx.peers[k.remote]++
}

func (d *Daemon) unindexSALocked(sa *ikeSA) {
	if !sa.filed {
		return
	}
	sa.filed = false
	k := sa.pair()
	d.idx.sas.Remove(d.pairHash(k), sa)
	if d.idx.peers[k.remote]--; d.idx.peers[k.remote] <= 0 {
		delete(d.idx.peers, k.remote)
	}
}

// moveSALocked changes an SA's endpoints, and where the indexes file it.
// Daemon.mu and the SA's mutex must be held.
func (d *Daemon) moveSALocked(sa *ikeSA, local, remote netip.AddrPort) {
	filed := sa.filed
	d.unindexSALocked(sa)
	sa.local, sa.remote = local, remote
	if filed {
		d.indexSALocked(sa)
	}
}

// endpoints returns the endpoint pairs the tunnel may be reached by: its
// source with its destination, its backup destination and peer, the
// address it learned, each once.
func (tu *tunnel) endpoints(peer netip.Addr) []endpointPair {
	ps := make([]endpointPair, 0, 3)
	for _, a := range [...]netip.Addr{tu.cfg.Destination, tu.cfg.BackupDestination, peer} {
		if p := (endpointPair{tu.cfg.Source, a}); a.IsValid() && !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	return ps
}

// indexTunnelLocked files the tunnel, or files it anew after its learned
// peer changed. The keys its configuration gives (sameKeys) must not
// change while it is filed: Reconfigure takes it out first. Daemon.mu
// must be held.
func (d *Daemon) indexTunnelLocked(tu *tunnel) {
	peer := tu.peer.Addr()
	if tu.filed {
		if peer == tu.filedPeer {
			return
		}
		d.unindexTunnelLocked(tu)
	}
	d.fileTunnelLocked(tu, peer, true)
	tu.filed, tu.filedPeer = true, peer
}

// unindexTunnelLocked takes the tunnel out of the indexes. Daemon.mu must
// be held.
func (d *Daemon) unindexTunnelLocked(tu *tunnel) {
	if tu.filed {
		d.fileTunnelLocked(tu, tu.filedPeer, false)
		tu.filed, tu.filedPeer = false, netip.Addr{}
	}
}

// sameKeys reports whether two configurations of a tunnel file it under
// the same keys.
func sameKeys(a, b *ike.Tunnel) bool {
	return a.Source == b.Source && a.Destination == b.Destination && a.BackupDestination == b.BackupDestination &&
		a.RemoteID.Folded() == b.RemoteID.Folded() && a.RemoteSelector == b.RemoteSelector && a.LocalSelector == b.LocalSelector
}

// fileTunnelLocked adds the tunnel to, or removes it from, the indexes
// under the keys of its configuration and peer. Daemon.mu must be held.
func (d *Daemon) fileTunnelLocked(tu *tunnel, peer netip.Addr, add bool) {
	for _, p := range tu.endpoints(peer) {
		if add {
			d.idx.tunnels.Add(d.pairHash(p), tu)
		} else {
			d.idx.tunnels.Remove(d.pairHash(p), tu)
		}
	}
	if id := tu.cfg.RemoteID; !id.IsZero() {
		k := d.idHash(tu.cfg.Source, id)
		if add {
			d.idx.ids.Add(k, tu)
		} else {
			d.idx.ids.Remove(k, tu)
		}
	}
	for _, h := range d.selHashes(tu.cfg) {
		if add {
			d.idx.sels.Add(h, tu)
		} else {
			d.idx.sels.Remove(h, tu)
		}
	}
}

// idHash is where the identity index files a tunnel from local naming
// its peer by id. Daemon.mu must be held.
func (d *Daemon) idHash(local netip.Addr, id ike.Identity) uint64 {
	return maphash.Comparable(d.hashSeed(), sourceID{local, id.Folded()})
}

// tunnelsAt yields, once each, the tunnels from local that may reach
// remote (by destination, backup destination or learned peer) and, when
// id is not zero, those from local naming id: a superset of the tunnels
// of an event between the two addresses, which the caller filters as it
// would the whole list. Daemon.mu must be held while it runs.
func (d *Daemon) tunnelsAt(local, remote netip.Addr, id ike.Identity) iter.Seq[*tunnel] {
	return func(yield func(*tunnel) bool) {
		pair := d.pairHash(endpointPair{local, remote}) // a superset still
		for tu := range d.idx.tunnels.Get(pair) {
			if !yield(tu) {
				return
			}
		}
		if id.IsZero() {
			return
		}
		folded := id.Folded()
		for tu := range d.idx.ids.Get(d.idHash(local, id)) {
			if tu.cfg.Source != local || tu.cfg.RemoteID.Folded() != folded {
				continue // another key with the same hash
			}
			if !d.idx.tunnels.Has(pair, tu) && !yield(tu) {
				return
			}
		}
	}
}

// fileChildLocked adds a child SA to, or removes it from, Daemon.children
// under the hashes of its inbound and outbound SAIDs (8 bytes a key, not
// 32: issue 13). Daemon.mu must be held.
func (d *Daemon) fileChildLocked(c *childSA, add bool) {
	for _, id := range [...]ipsec.SAID{c.in, c.out} {
		h := maphash.Comparable(d.hashSeed(), id)
		if add {
			d.children.Add(h, c)
		} else {
			d.children.Remove(h, c)
		}
	}
}

// childLocked returns the child SA with an inbound or outbound SA id, or
// nil. Daemon.mu must be held.
func (d *Daemon) childLocked(id ipsec.SAID) *childSA {
	for c := range d.children.Get(maphash.Comparable(d.hashSeed(), id)) {
		if c.in == id || c.out == id { // not another SA with the same hash
			return c
		}
	}
	return nil
}
