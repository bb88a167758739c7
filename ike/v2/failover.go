package v2

import (
	"net/netip"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
)

// Tunnel failover (the seed's "Tunnel Failover"), as ike/v1/failover.go
// does it for IKEv1: a tunnel with a backup destination switches to the
// other destination when dead peer detection declares the one in use dead
// (peerGone) or when an IKE SA this end initiated with it for the tunnel
// fails before it is established (setupFailed: no answer to IKE_SA_INIT
// or IKE_AUTH, a refusal, an AUTH that does not verify, no key for it),
// and negotiates there. It is two-way. A hold-down separates two
// switches: a failure within it switches when it ends, unless the tunnel
// is up again by then or a negotiation is running (whose failure then
// switches at once). A child SA refused on an established IKE SA is the
// tunnel's problem, not the peer's: it does not switch. The time from the
// last message heard from the old destination to child SAs installed with
// the new one is shown in the status.

// tunnelHistory is a tunnel's failover history, allocated on first use.
// Guarded by Daemon.mu.
type tunnelHistory struct {
	count            int
	switchedAt       time.Time
	lastFrom, lastTo netip.Addr
	lastReason       string
	start            time.Time // the last message from the old destination
	duration         time.Duration
	measuring        bool

	timer         clock.Timer // a switch waiting for the hold-down
	due           bool        // the hold-down ended during a negotiation
	pendingReason string
	pendingHeard  time.Time
}

func (tu *tunnel) history() *tunnelHistory {
	if tu.hist == nil {
		tu.hist = &tunnelHistory{}
	}
	return tu.hist
}

// dest is the destination in use: the backup after an odd number of
// switches.
func (tu *tunnel) dest() netip.Addr {
	if tu.onBackup {
		return tu.cfg.BackupDestination
	}
	return tu.cfg.Destination
}

// setupFailed reports a failed IKE SA setup for a tunnel and switches it
// to its other destination if it has one.
func (d *Daemon) setupFailed(name string, remote netip.Addr, reason string, lastHeard time.Time) {
	d.negotiationFailed(name, remote, reason)
	d.failover(name, remote, reason, lastHeard)
}

// failover switches the tunnel from the destination from, which failed,
// to the other one, unless the hold-down forbids it yet.
func (d *Daemon) failover(name string, from netip.Addr, reason string, lastHeard time.Time) {
	d.mu.Lock()
	tu := d.tunnels[name]
	if d.closed || tu == nil || !tu.cfg.BackupDestination.IsValid() || tu.dest() != from || tu.state == tunnelUp {
		d.mu.Unlock()
		return
	}
	now := d.clk.Now()
	h := tu.history()
	if until := h.switchedAt.Add(d.cfg.HoldDown(tu.cfg)); !h.switchedAt.IsZero() && now.Before(until) {
		h.pendingReason, h.pendingHeard = reason, lastHeard
		if h.timer == nil {
			h.timer = d.clk.AfterFunc(until.Sub(now), func() { d.holdDownExpired(tu) })
		}
		d.mu.Unlock()
		d.log.Info("failover held down", "tunnel", name, "from", from, "until", until, "reason", reason)
		return
	}
	sw := d.switchLocked(tu, reason, lastHeard, now)
	d.mu.Unlock()
	d.afterSwitch(sw)
}

// holdDownExpired makes the switch a failure within the hold-down asked
// for, unless the tunnel is up again or negotiating.
func (d *Daemon) holdDownExpired(tu *tunnel) {
	d.mu.Lock()
	h := tu.history()
	h.timer = nil
	switch {
	case d.closed || d.tunnels[tu.cfg.Name] != tu || tu.state == tunnelUp:
		h.pendingReason = ""
		d.mu.Unlock()
		return
	case tu.acq != nil:
		h.due = true // the negotiation's failure switches (failover)
		d.mu.Unlock()
		return
	}
	sw := d.switchLocked(tu, h.pendingReason, h.pendingHeard, d.clk.Now())
	d.mu.Unlock()
	d.afterSwitch(sw)
}

// switched describes a switch for the events that follow it.
type switched struct {
	name, reason string
	from, to     netip.Addr
}

// switchLocked moves the tunnel to its other destination. Daemon.mu must
// be held.
func (d *Daemon) switchLocked(tu *tunnel, reason string, lastHeard, now time.Time) switched {
	h := tu.history()
	from := tu.dest()
	tu.onBackup = !tu.onBackup
	tu.peer = netip.AddrPort{}
	d.indexTunnelLocked(tu)
	tu.acq = nil
	tu.retries = nil // the new destination starts afresh
	if tu.state == tunnelNegotiating {
		tu.state = tunnelDown
	}
	if lastHeard.IsZero() || lastHeard.After(now) {
		lastHeard = now
	}
	h.count++
	h.switchedAt = now
	h.lastFrom, h.lastTo, h.lastReason = from, tu.dest(), reason
	h.start, h.duration, h.measuring = lastHeard, 0, true
	h.due, h.pendingReason, h.pendingHeard = false, "", time.Time{}
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	d.counters.Failovers++
	return switched{name: tu.cfg.Name, reason: reason, from: from, to: tu.dest()}
}

// afterSwitch reports a switch and negotiates with the new destination.
func (d *Daemon) afterSwitch(sw switched) {
	d.log.Warn("tunnel failover", "tunnel", sw.name, "from", sw.from, "to", sw.to, "reason", sw.reason)
	if d.lis != nil {
		d.lis.Failover(sw.name, sw.from, sw.to, sw.reason)
	}
	d.Acquire(sw.name)
}

// failoverDoneLocked completes the measurement of a switch once a child
// SA with the new destination is installed. Daemon.mu must be held.
func (d *Daemon) failoverDoneLocked(tu *tunnel, c *childSA) {
	if h := tu.hist; h != nil && h.measuring && c.out.Dst == tu.dest() {
		h.measuring = false
		h.duration = max(d.sched.time(c.created).Sub(h.start), time.Nanosecond)
		d.log.Info("failover complete", "tunnel", tu.cfg.Name, "to", tu.dest(), "duration", h.duration)
	}
}

// failoverStatusLocked describes a tunnel's failover history. Daemon.mu
// must be held.
func (d *Daemon) failoverStatusLocked(tu *tunnel, now time.Time) ike.TunnelFailover {
	st := ike.TunnelFailover{Backup: tu.cfg.BackupDestination, OnBackup: tu.onBackup}
	h := tu.hist
	if h == nil {
		return st
	}
	st.Count, st.LastFrom, st.LastTo, st.LastReason = h.count, h.lastFrom, h.lastTo, h.lastReason
	st.LastAt, st.LastDuration, st.InProgress = h.switchedAt, h.duration, h.measuring
	if until := h.switchedAt.Add(d.cfg.HoldDown(tu.cfg)); !h.switchedAt.IsZero() && until.After(now) {
		st.HoldDownUntil = until
	}
	st.Pending = h.timer != nil || h.due
	return st
}

// deadPeerFailover switches the tunnels whose destination was the dead
// peer of an IKE SA. The SA's mutex must be held; the switches run as
// effects, after the tunnels went down.
func (sa *ikeSA) deadPeerFailover(reason string) {
	d := sa.d
	local, remote, heard := sa.local.Addr(), sa.remote.Addr(), sa.heardAt()
	d.mu.Lock()
	var names []string
	for tu := range d.tunnelsAt(local, remote, ike.Identity{}) {
		if tu.dest() == remote && tu.cfg.BackupDestination.IsValid() {
			names = append(names, tu.cfg.Name)
		}
	}
	d.mu.Unlock()
	for _, n := range names {
		sa.after(func() { d.failover(n, remote, reason, heard) })
	}
}
