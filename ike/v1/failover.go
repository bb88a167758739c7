package v1

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
)

// Tunnel failover (the seed's "Tunnel Failover"): a tunnel with a backup
// destination switches to the other destination when DPD declares the
// one in use dead (peerDead) or when phase 1 with it fails (setupFailed),
// and negotiates new SAs there. It is two-way: from the backup the tunnel
// goes back to its destination. A hold-down separates two switches: a
// failure within it switches only when it ends, and only if the tunnel
// is not up again by then.
//
// What counts as a failed IKE SA setup: a phase 1 this end initiated for
// the tunnel that ended in any error but a cancellation — the peer did not
// answer (retransmissions exhausted), refused (NO-PROPOSAL-CHOSEN,
// AUTHENTICATION-FAILED or another error notify), failed authentication,
// sent malformed messages, or no key or policy could be used with it
// (the other destination may have one). A phase 1 canceled because the
// daemon closes or DPD already declared the peer dead does not count, nor
// does a failed quick mode (a transform or selector mismatch is the
// tunnel's, not the peer's), nor a phase 1 the peer initiated.
//
// The time from the last packet received from the old destination to the
// new SAs installed with the other one is measured, logged and shown in
// Status (TunnelFailover.LastDuration).

// tunnelHistory is what a tunnel remembers of DPD and failover; allocated
// on first use so that an idle tunnel stays small. Guarded by Daemon.mu.
type tunnelHistory struct {
	deadAt   time.Time
	deadPeer netip.Addr
	deadLast dpdLast // what DPD last saw of the dead peer

	count            int
	switchedAt       time.Time
	lastFrom, lastTo netip.Addr
	lastReason       string
	start            time.Time // last packet from the old destination
	duration         time.Duration
	measuring        bool

	timer         clock.Timer // a switch waiting for the hold-down
	due           bool        // the hold-down ended during a negotiation
	pendingReason string
	pendingHeard  time.Time
}

// history returns the tunnel's history, allocating it. Daemon.mu must be
// held.
func (tu *tunnel) history() *tunnelHistory {
	if tu.hist == nil {
		tu.hist = &tunnelHistory{}
	}
	return tu.hist
}

// setupFailure reports whether a phase 1 error counts as a failed IKE SA
// setup for failover.
func setupFailure(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled)
}

// setupFailed switches a tunnel whose phase 1 with remote failed.
func (d *Daemon) setupFailed(name string, remote netip.Addr, reason string, lastHeard time.Time) {
	d.mu.Lock()
	tu := d.tunnels[name]
	d.mu.Unlock()
	if tu != nil {
		d.failover(tu, remote, reason, lastHeard)
	}
}

// failover switches tu from the destination from, which failed, to the
// other one, unless the hold-down forbids it yet: then the switch waits
// for its end. lastHeard is when the last packet came from from. A tunnel
// that is up (a phase 1 for a rekey failed while its SAs live) stays:
// DPD decides whether its destination is dead.
func (d *Daemon) failover(tu *tunnel, from netip.Addr, reason string, lastHeard time.Time) {
	d.mu.Lock()
	if d.closed || d.tunnels[tu.cfg.Name] != tu || !tu.cfg.BackupDestination.IsValid() || tu.dest() != from || tu.state == stateUp {
		d.mu.Unlock()
		return
	}
	now := d.now()
	h := tu.history()
	hold := d.cfg.HoldDown(tu.cfg)
	if until := h.switchedAt.Add(hold); !h.switchedAt.IsZero() && now.Before(until) {
		h.pendingReason, h.pendingHeard = reason, lastHeard
		if h.timer == nil {
			h.timer = d.clk.AfterFunc(until.Sub(now), func() { d.holdDownExpired(tu) })
		}
		name := tu.cfg.Name
		d.mu.Unlock()
		d.log.Info("failover held down", "tunnel", name, "from", from, "until", until, "reason", reason)
		return
	}
	sw := d.switchLocked(tu, reason, lastHeard, now)
	d.mu.Unlock()
	d.afterSwitch(tu, sw)
}

// holdDownExpired makes the switch a failure within the hold-down asked
// for, unless the tunnel is up again. If a negotiation is in progress its
// outcome decides: a failure switches at once (negotiationFailed).
func (d *Daemon) holdDownExpired(tu *tunnel) {
	d.mu.Lock()
	h := tu.history()
	h.timer = nil
	switch {
	case d.closed || d.tunnels[tu.cfg.Name] != tu || tu.state == stateUp:
		h.pendingReason = ""
		d.mu.Unlock()
		return
	case tu.acq != nil:
		h.due = true
		d.mu.Unlock()
		return
	}
	sw := d.switchLocked(tu, h.pendingReason, h.pendingHeard, d.now())
	d.mu.Unlock()
	d.afterSwitch(tu, sw)
}

// switched describes a switch for the events that follow it.
type switched struct {
	name, reason string
	from, to     netip.Addr
}

// switchLocked moves the tunnel to its other destination and forgets the
// peer and IKE SA of the old one. Daemon.mu must be held.
func (d *Daemon) switchLocked(tu *tunnel, reason string, lastHeard, now time.Time) switched {
	h := tu.history()
	from := tu.dest()
	tu.onBackup = !tu.onBackup
	to := tu.dest()
	name := tu.cfg.Name
	tu.peer, tu.sa = netip.AddrPort{}, nil
	for _, sa := range d.halfOpen {
		if q := sa.queued; q != nil {
			q.waiting = slices.DeleteFunc(q.waiting, func(p *qmPlan) bool { return p.tu == tu })
		}
	}
	for _, sa := range d.sas {
		if q := sa.queued; q != nil {
			q.waiting = slices.DeleteFunc(q.waiting, func(p *qmPlan) bool { return p.tu == tu })
		}
	}
	tu.acq, tu.qm = nil, ""
	tu.retries = nil // the new destination starts afresh
	if tu.state == stateNegotiating {
		tu.state = stateDown
	}
	if lastHeard.IsZero() || lastHeard.After(now) {
		lastHeard = now
	}
	h.count++
	h.switchedAt = now
	h.lastFrom, h.lastTo, h.lastReason = from, to, reason
	h.start, h.duration, h.measuring = lastHeard, 0, true
	h.due, h.pendingReason, h.pendingHeard = false, "", time.Time{}
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	d.counters.Failovers++
	return switched{name: name, reason: reason, from: from, to: to}
}

// afterSwitch reports a switch and starts negotiating with the new
// destination.
func (d *Daemon) afterSwitch(tu *tunnel, sw switched) {
	d.log.Warn("tunnel failover", "tunnel", sw.name, "from", sw.from, "to", sw.to, "reason", sw.reason)
	if d.lis != nil {
		d.lis.Failover(sw.name, sw.from, sw.to, sw.reason)
	}
	d.mu.Lock()
	ready := tu.state == stateDown && tu.acq == nil
	d.mu.Unlock()
	if ready {
		d.Acquire(sw.name)
	}
}

// failoverDoneLocked completes the measurement of a switch once SAs with
// the new destination are installed; it returns the duration, or zero if
// no switch was being measured. Daemon.mu must be held.
func (d *Daemon) failoverDoneLocked(tu *tunnel, c *childSA) time.Duration {
	h := tu.hist
	if h == nil || !h.measuring || c.out.Dst != tu.dest() {
		return 0
	}
	h.measuring = false
	h.duration = max(c.created.Sub(h.start), time.Nanosecond)
	return h.duration
}

// tunnelFailoverLocked describes a tunnel's failover history. Daemon.mu
// must be held.
func (d *Daemon) tunnelFailoverLocked(tu *tunnel, now time.Time) ike.TunnelFailover {
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
