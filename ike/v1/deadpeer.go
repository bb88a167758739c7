package v1

import (
	"time"
)

// What happens when DPD declares a peer dead: RFC 3706 leaves it to the
// implementation; the seed (JUNOSe's "DPD and IPSec Tunnel Failover")
// lists it, and peerDead does it.

// dpdLast is what DPD last saw of a peer: traffic sent and received (the
// last packet from the peer), and the last R-U-THERE sequence number.
type dpdLast struct {
	sent, received time.Time
	seq            uint32
}

// peerDead acts on a peer declared dead, as the seed lists: the IKE SAs
// and every user SA between the two endpoints are deleted (the Installer
// zeroes the keys; no delete is sent to a dead peer), the tunnels that
// lost their SAs go down with the reason, PeerDead and TunnelDown tell
// ism, and tunnels whose destination it was switch to their backup.
func (d *Daemon) peerDead(key peerKey, last dpdLast, reason string) {
	d.mu.Lock()
	now := d.now()
	if p := d.dpd[key]; p != nil {
		if p.timer != nil {
			p.timer.Stop()
		}
		delete(d.dpd, key)
	}
	seen := map[*ikeSA]bool{}
	var sas []*ikeSA
	for _, sa := range d.sas {
		if sa.peer() == key && !seen[sa] {
			seen[sa] = true
			sas = append(sas, sa)
		}
	}
	for _, sa := range d.halfOpen {
		if sa.peer() == key && !seen[sa] {
			seen[sa] = true
			sas = append(sas, sa)
		}
	}
	var cs []*childSA
	for c := range d.pairs.childrenOf(key) {
		cs = append(cs, c)
	}
	var down []string
	for _, c := range cs {
		d.stopChildLocked(c)
		if tu := c.tu; len(tu.children) == 0 && tu.state == stateUp {
			tu.state = stateDown
			tu.lastError = reason
			down = append(down, tu.cfg.Name)
		}
	}
	var gone []*tunnel // tunnels whose destination it was
	var goneNames []string
	for _, tu := range d.tunnels {
		if tunnelPeerKey(tu) == key {
			h := tu.history()
			h.deadAt, h.deadPeer, h.deadLast = now, key.remote, last
			gone = append(gone, tu)
			goneNames = append(goneNames, tu.cfg.Name)
		}
	}
	d.counters.DPDPeersDead++
	d.mu.Unlock()

	d.log.Warn("DPD: peer dead", "local", key.local, "remote", key.remote, "reason", reason,
		"last_heard", last.received, "sas", len(cs))
	// ism hears of the verdict before the SAs go, so that the tunnel
	// goes down (and its trap says so) because the peer is dead.
	if d.lis != nil {
		for _, name := range goneNames {
			d.lis.PeerDead(name, key.remote, now)
		}
	}
	for _, sa := range sas {
		d.removeIKESA(sa)
	}
	for _, c := range cs {
		_ = d.inst.DeleteSA(c.out)
		_ = d.inst.DeleteSA(c.in)
	}
	if d.lis != nil {
		for _, name := range down {
			d.lis.TunnelDown(name, reason)
		}
	}
	for _, tu := range gone {
		d.failover(tu, key.remote, reason, last.received)
	}
}
