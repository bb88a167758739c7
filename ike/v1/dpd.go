package v1

import (
	"net/netip"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// Dead peer detection (RFC 3706), driven by traffic as the seed describes.
//
// Support is announced with a vendor ID in phase 1 (§5.1) by an end that
// has a tunnel to the peer with DPD on, and only then. Inquiries are
// sent only to a peer that announced it; they are R-U-THERE notifies in
// informational exchanges protected by the IKE SA (§5.3: protocol
// ISAKMP, the two cookies as SPI, a 32-bit sequence number as data),
// answered by an R-U-THERE-ACK that echoes the number.
//
// Every authenticated R-U-THERE is answered, whether this end announced
// DPD or not: it costs one message, and strongSwan does the same
// (task_manager_v1.c process_dpd answers "anyway"), which is what a peer
// that probes ISM expects. Only one whose sequence number is newer than
// the last counts as a sign of life, so a replayed inquiry cannot keep a
// dead peer alive.
//
// State lives per pair of IKE endpoints (a dpdPeer), not per IKE SA: it
// survives phase 1 rekeys, and one peer serves every tunnel to it. When
// several tunnels to one peer have DPD on, the most demanding settings
// win (the shortest timers, the fewest retries). A timer of the daemon's clock
// per peer does the work; no goroutine waits while nothing is due.
//
// Each check reads the usage of the user SAs of the tunnels to the peer
// (Installer.QuerySA): the newest LastUsed of the outbound SAs is when
// traffic was last sent, the newest of the inbound SAs or of an
// authenticated IKE message from the peer (phase 1, quick mode, an
// informational) when traffic was last received. An inquiry goes out when
// traffic was sent within Sent but nothing received within Silent, or
// when nothing went either way for Idle. Until it is answered (an ACK
// with one of its sequence numbers, or any traffic received since)
// another goes out every RetryInterval, Retries times, each with the next
// sequence number (RFC 3706 §7 as libreswan's ikev1_dpd.c reads it; the
// first one random with its top bit clear, as isakmpd's dpd.c and
// libreswan do), and each in an informational exchange of its own, with a
// new message ID: strongSwan answers a repeated identical message with
// nothing. RetryInterval after the last one, the peer is dead: see
// peerDead (deadpeer.go).

// dpdVendorID announces RFC 3706 support (RFC 3706 §5.1): fourteen fixed
// bytes and the version, major 1 and minor 0.
var dpdVendorID = []byte{0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00}

// dpdMinTick bounds how often a peer is checked.
const dpdMinTick = 50 * time.Millisecond

// dpdPeer is the DPD state of one pair of IKE endpoints. Guarded by
// Daemon.mu.
type dpdPeer struct {
	key     peerKey
	cfg     ipsec.DPD // in force
	tunnels []*tunnel // tunnels whose SAs go to the peer
	sa      *ikeSA    // the newest established IKE SA with the peer, as last seen
	timer   clock.Timer

	lastIKE         time.Time // last authenticated IKE message from the peer
	lastIn, lastOut time.Time // traffic as last measured (lastIn includes lastIKE)

	seq         uint32    // of the last R-U-THERE sent; 0 before the first
	firstSeq    uint32    // of the first R-U-THERE of the inquiry in progress
	outstanding int       // R-U-THEREs of the inquiry in progress
	inquiryAt   time.Time // when the inquiry in progress started
	sentAt      time.Time // when its last R-U-THERE went out
}

// tunnelPeerKey returns the endpoints of a tunnel's destination in use:
// the peer it learned, or its configured destination. Daemon.mu must be
// held.
func tunnelPeerKey(tu *tunnel) peerKey {
	remote := tu.dest()
	if tu.peer.IsValid() {
		remote = tu.peer.Addr()
	}
	return peerKey{tu.cfg.Source, remote}
}

// wantDPDLocked reports whether a tunnel from local to remote (a peer of
// identity id, when known) has DPD on: whether this end announces DPD to
// that peer. Daemon.mu must be held.
func (d *Daemon) wantDPDLocked(local, remote netip.Addr, id ike.Identity) bool {
	if !d.cfg.anyDPD {
		return false
	}
	for _, tu := range d.tunnels {
		t := tu.cfg
		if t.Source != local {
			continue
		}
		switch {
		case t.Destination == remote, t.BackupDestination == remote, tu.peer.Addr() == remote,
			!t.Destination.IsValid() && (id.IsZero() || t.RemoteID.Equal(id)):
			// The peer matches; resolving the timers costs more.
			if d.cfg.TunnelDPD(t).Enabled {
				return true
			}
		}
	}
	return false
}

// dpdArmLocked starts DPD with a peer if a tunnel to it has DPD on and
// the peer announced support, and registers tu (if not nil) as one whose
// traffic counts. It does nothing more when DPD already runs. Daemon.mu
// must be held.
func (d *Daemon) dpdArmLocked(key peerKey, tu *tunnel) {
	d.dpdArmSALocked(key, tu, nil)
}

// dpdArmSALocked is dpdArmLocked for a phase 1 just established: sa is
// the IKE SA DPD uses from now on. Daemon.mu must be held.
func (d *Daemon) dpdArmSALocked(key peerKey, tu *tunnel, sa *ikeSA) {
	if d.closed {
		return
	}
	p := d.dpd[key]
	if p == nil {
		if !d.cfg.anyDPD || tu != nil && !d.cfg.TunnelDPD(tu.cfg).Enabled {
			return
		}
		p = &dpdPeer{key: key, lastIKE: d.now()}
		for _, t := range d.tunnels {
			if tunnelPeerKey(t) == key {
				p.tunnels = append(p.tunnels, t)
			}
		}
		if _, ok := d.dpdSettingsLocked(p); !ok {
			return
		}
		d.dpd[key] = p
	} else if tu != nil && !containsTunnel(p.tunnels, tu) {
		p.tunnels = append(p.tunnels, tu)
	}
	if sa != nil {
		p.sa = sa
	}
	if p.timer == nil {
		sa := d.dpdSALocked(p)
		if sa == nil || !sa.peerDPD {
			return // armed again by the next phase 1
		}
		p.timer = d.clk.AfterFunc(dpdMinTick, func() { d.dpdTick(p) })
	}
}

// dpdSALocked returns the established IKE SA DPD uses with the peer, or
// nil. Daemon.mu must be held.
func (d *Daemon) dpdSALocked(p *dpdPeer) *ikeSA {
	if sa := p.sa; sa != nil && sa.established && !sa.dead {
		return sa
	}
	p.sa = d.findIKESA(p.key.local, p.key.remote)
	if p.sa != nil && !p.sa.established {
		p.sa = nil
	}
	return p.sa
}

func containsTunnel(ts []*tunnel, tu *tunnel) bool {
	for _, t := range ts {
		if t == tu {
			return true
		}
	}
	return false
}

// dpdSettingsLocked drops the tunnels that no longer go to the peer and
// returns the most demanding DPD settings of the rest; false when none of
// them has DPD on. Daemon.mu must be held.
func (d *Daemon) dpdSettingsLocked(p *dpdPeer) (ipsec.DPD, bool) {
	var out ipsec.DPD
	kept := p.tunnels[:0]
	for _, tu := range p.tunnels {
		if d.tunnels[tu.cfg.Name] != tu || tunnelPeerKey(tu) != p.key {
			continue
		}
		kept = append(kept, tu)
		c := d.cfg.TunnelDPD(tu.cfg)
		if !c.Enabled {
			continue
		}
		if !out.Enabled {
			out = c
			continue
		}
		out.Sent = min(out.Sent, c.Sent)
		out.Silent = min(out.Silent, c.Silent)
		out.Idle = min(out.Idle, c.Idle)
		out.RetryInterval = min(out.RetryInterval, c.RetryInterval)
		out.Retries = min(out.Retries, c.Retries)
	}
	clear(p.tunnels[len(kept):])
	p.tunnels = kept
	return out, out.Enabled
}

// dpdRefreshLocked re-reads every peer's tunnels after a
// reconfiguration, checks each peer soon with the new settings, and starts
// DPD where it is now wanted. Daemon.mu must be held.
func (d *Daemon) dpdRefreshLocked() {
	for key, p := range d.dpd {
		p.tunnels = p.tunnels[:0]
		for _, tu := range d.tunnels {
			if tunnelPeerKey(tu) == key {
				p.tunnels = append(p.tunnels, tu)
			}
		}
		if p.timer != nil && p.timer.Stop() {
			p.timer = d.clk.AfterFunc(dpdMinTick, func() { d.dpdTick(p) })
		}
	}
	for _, tu := range d.tunnels {
		if tu.cur() != nil {
			d.dpdArmLocked(tunnelPeerKey(tu), tu)
		}
	}
}

// heardLocked records an authenticated message from the peer of sa: a
// sign of life. Daemon.mu must be held.
func (d *Daemon) heardLocked(sa *ikeSA) {
	now := d.now()
	if p := d.dpd[sa.peer()]; p != nil {
		p.lastIKE = now
	}
}

// heard is heardLocked without the lock held.
func (d *Daemon) heard(sa *ikeSA) {
	d.mu.Lock()
	d.heardLocked(sa)
	d.mu.Unlock()
}

// tunnelDPDLocked describes a tunnel's DPD state; newest holds the newest
// established IKE SA of each peer. Daemon.mu must be held.
func (d *Daemon) tunnelDPDLocked(tu *tunnel, newest map[peerKey]*ikeSA) ike.TunnelDPD {
	key := tunnelPeerKey(tu)
	st := ike.TunnelDPD{Enabled: d.cfg.TunnelDPD(tu.cfg).Enabled}
	if sa := newest[key]; sa != nil {
		st.PeerSupports = sa.peerDPD
	}
	h := tu.hist
	if h != nil {
		st.DeadAt, st.DeadPeer = h.deadAt, h.deadPeer
	}
	switch p := d.dpd[key]; {
	case p != nil:
		st.LastSent, st.LastReceived = p.lastOut, later(p.lastIn, p.lastIKE)
		st.Outstanding, st.LastSequence = p.outstanding, p.seq
	case h != nil && h.deadPeer == key.remote:
		st.LastSent, st.LastReceived, st.LastSequence = h.deadLast.sent, h.deadLast.received, h.deadLast.seq
	}
	return st
}
