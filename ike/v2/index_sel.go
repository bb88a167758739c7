package v2

import (
	"hash/maphash"
	"net/netip"
	"slices"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/selector"
)

// selKey files a tunnel by its selectors, with its source and one way it
// names its peer: a destination (or backup destination) address, or its
// remote identity in the folded form. The selector index holds the keys'
// hashes: a collision only adds a tunnel the look-up then sets aside.
type selKey struct {
	local, peer         netip.Addr
	id                  ike.Identity
	remoteSel, localSel selector.Selector
}

func (d *Daemon) selHash(k selKey) uint64 { return maphash.Comparable(d.hashSeed(), k) }

// hashSeed returns the seed of the indexes' hashes, making it.
// Daemon.mu must be held.
func (d *Daemon) hashSeed() maphash.Seed {
	if d.idx.seed == (maphash.Seed{}) {
		d.idx.seed = maphash.MakeSeed()
	}
	return d.idx.seed
}

// selHashes returns where the selector index files the tunnel.
// Daemon.mu must be held.
func (d *Daemon) selHashes(t *ike.Tunnel) []uint64 {
	var hs []uint64
	add := func(k selKey) {
		k.local, k.remoteSel, k.localSel = t.Source, t.RemoteSelector, t.LocalSelector
		if h := d.selHash(k); !slices.Contains(hs, h) {
			hs = append(hs, h)
		}
	}
	for _, a := range [...]netip.Addr{t.Destination, t.BackupDestination} {
		if a.IsValid() {
			add(selKey{peer: a})
		}
	}
	if !t.RemoteID.IsZero() {
		add(selKey{id: t.RemoteID.Folded()})
	}
	return hs
}

// childCandidates returns the tunnels a peer's CREATE_CHILD_SA request m
// may be for, as tunnelsFor orders them for chooseTunnel; when one
// tunnel's selectors are exactly the request's (the usual request, and
// chooseTunnel's first choice), that tunnel alone, found by the selector
// index: with thousands of tunnels between the same two addresses, listing
// and sorting them all for each child SA made its cost grow with their
// number. Daemon.mu must be held.
func (d *Daemon) childCandidates(local, remote netip.Addr, id ike.Identity, m *Message) []ike.Tunnel {
	var tsi, tsr TS
	okI, errI := m.decode(PayloadTSi, &tsi)
	okR, errR := m.decode(PayloadTSr, &tsr)
	if okI && okR && errI == nil && errR == nil {
		if t := d.exactTunnel(local, remote, id, tsi.Selectors, tsr.Selectors); t != nil {
			return []ike.Tunnel{*t}
		}
	}
	return d.tunnelsFor(local, remote, id)
}

// exactTunnel returns the first tunnel of tunnelsFor's list whose
// selectors the peer's traffic selectors are exactly, or nil. Daemon.mu
// must be held.
func (d *Daemon) exactTunnel(local, remote netip.Addr, id ike.Identity, tsi, tsr []TrafficSelector) *ike.Tunnel {
	rs, okI := single(tsi)
	ls, okR := single(tsr)
	if !okI || !okR {
		return nil
	}
	var best *ike.Tunnel
	bestNamed := false
	consider := func(k selKey) {
		k.local, k.remoteSel, k.localSel = local, rs, ls
		for tu := range d.idx.sels.Get(d.selHash(k)) {
			t := tu.cfg
			how := peerMatch(t, remote, id)
			if t.Source != local || how == matchNone {
				continue
			}
			r, ok1 := narrow(t.RemoteSelector, tsi)
			l, ok2 := narrow(t.LocalSelector, tsr)
			if !ok1 || !ok2 || !exactly(t, r, l, tsi, tsr) {
				continue
			}
			named := how == matchNamed
			if best == nil || named && !bestNamed || named == bestNamed && t.Name < best.Name {
				best, bestNamed = t, named
			}
		}
	}
	consider(selKey{peer: remote})
	if !id.IsZero() {
		consider(selKey{id: id.Folded()})
	}
	return best
}
