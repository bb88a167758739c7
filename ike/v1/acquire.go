package v1

import (
	"net/netip"
	"slices"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/selector"
)

// Negotiations this end starts (ike.Daemon.AcquireFor): an acquire, for a
// packet none of a tunnel's child SAs covers, proposes the part of the
// tunnel's selectors around it that the child SAs leave (ike.AcquirePair:
// the whole tunnel when it has none; one pair, since a quick mode carries
// one IDci and one IDcr, which is why strongSwan's IKEv1 trap policies do
// not propose the packet's own); a rekey proposes its child's selectors
// (RFC 2409 §5.5: the new SA replaces the old one for the same traffic).
// A tunnel negotiates one acquire at a time, and each child its own rekey.
//
// A failed negotiation puts off the next of its selector pair by the
// back-off (ike.Backoff: doubling up to its maximum); a rekey is tried
// again when it ends, an acquire when traffic asks after it. Only a change
// of a pair's state (the first failure since a success, a new reason) is
// logged as a warning and reported to the Listener, which traps; repeats
// are counted (Status: TunnelStatus.Negotiations).

// qmPlan is what a quick mode this end starts is for.
type qmPlan struct {
	tu            *tunnel
	local, remote selector.Selector // IDci and IDcr
	replaces      *childSA          // the child a rekey replaces; nil: an acquire
	retry         *ike.Retry        // the pair's record
}

// Acquire starts negotiating SAs with the tunnel's whole selectors for a
// tunnel that has none.
func (d *Daemon) Acquire(name string) { d.AcquireFor(name, netip.Addr{}, netip.Addr{}) }

// AcquireFor starts negotiating a child SA for traffic from src to dst
// that none of the tunnel's covers (ike.Daemon). A tunnel whose
// destination is known only by identity waits for the peer to connect
// first.
func (d *Daemon) AcquireFor(name string, src, dst netip.Addr) {
	d.mu.Lock()
	tu := d.tunnels[name]
	if tu == nil || d.closed || tu.acq != nil {
		d.mu.Unlock()
		return
	}
	local, remote, ok := ike.AcquireSelectors(tu.cfg, tu.pairs(), src, dst, tu.state == stateDown)
	if !ok {
		d.mu.Unlock()
		return
	}
	r := tu.retryFor(local, remote)
	if !r.Due(d.now()) {
		d.mu.Unlock()
		return
	}
	plan := &qmPlan{tu: tu, local: local, remote: remote, retry: r}
	d.mu.Unlock()
	d.negotiate(plan)
}

// retryFor returns the back-off record of a selector pair, making it.
// Daemon.mu must be held.
func (tu *tunnel) retryFor(local, remote selector.Selector) *ike.Retry {
	r := tu.retry(local, remote)
	if r == nil {
		r = &ike.Retry{}
		tu.retries = append(tu.retries, pairRetry{local, remote, r})
	}
	return r
}

// pairRetry is the back-off record of one selector pair.
type pairRetry struct {
	local, remote selector.Selector
	r             *ike.Retry
}

// retry returns the back-off record of a selector pair, or nil. A tunnel
// has one pair most of the time: a short slice, where a map took a
// kilobyte. Daemon.mu must be held.
func (tu *tunnel) retry(local, remote selector.Selector) *ike.Retry {
	for _, p := range tu.retries {
		if p.local == local && p.remote == remote {
			return p.r
		}
	}
	return nil
}

// negotiate starts the quick mode of a plan, after a phase 1 if needed. An
// acquire takes the tunnel's acquire slot; a rekey leaves the tunnel up
// meanwhile.
func (d *Daemon) negotiate(plan *qmPlan) {
	tu := plan.tu
	d.mu.Lock()
	if d.closed || plan.replaces == nil && tu.acq != nil && tu.acq != plan {
		d.mu.Unlock()
		return
	}
	local := tu.cfg.Source
	remote := tu.dest()
	if tu.peer.IsValid() {
		remote = tu.peer.Addr()
	}
	if !remote.IsValid() {
		tu.lastError = "the destination is known only by its identity: waiting for the peer to connect"
		if plan.replaces != nil {
			plan.replaces.rekeying = false
		}
		d.mu.Unlock()
		return
	}
	if plan.replaces == nil {
		tu.acq = plan
		if tu.state == stateDown {
			tu.state = stateNegotiating
		}
	}
	sa := d.findIKESA(local, remote)
	if sa == nil && d.initiating >= d.maxInitiating {
		// Counted as an attempt when its turn comes (initiationEnded).
		d.initQueue = append(d.initQueue, plan)
		d.mu.Unlock()
		return
	}
	plan.retry.Start()
	tu.attempts++
	switch {
	case sa != nil && sa.established:
		d.mu.Unlock()
		d.startQuickMode(plan, sa)
		return
	case sa != nil:
		q := sa.queue()
		q.waiting = append(q.waiting, plan)
		d.mu.Unlock()
		return
	}
	mode := tu.cfg.Mode
	d.mu.Unlock()
	if d.startPhase1(mode, tu, local, remote, []*qmPlan{plan}) == nil {
		d.negotiationFailed(plan, remote, "daemon closed")
	}
}

// maxInitiations bounds the phase 1 negotiations this end runs at once as
// initiator; more wait their turn. Traffic into thousands of tunnels at
// once (their peer restarted) started as many Diffie-Hellman exchanges,
// whose messages then overflowed the sockets they share with ESP and
// timed out: 87,000 retransmissions and 3,500 failed negotiations in a
// 10,000-tunnel soak, against a few thousand retransmissions with the
// negotiations in turn.
const maxInitiations = 250

// initiationEnded frees the place of a phase 1 this end started (done or
// failed) for the next plan waiting, which negotiates
// again from the start: an IKE SA with its peer may be up by now. A plan
// whose tunnel went, whose SA to rekey went, or that a child SA the peer
// started has answered is passed over.
func (d *Daemon) initiationEnded() {
	d.mu.Lock()
	d.initiating--
	var next *qmPlan
	for next == nil && len(d.initQueue) > 0 && !d.closed {
		p := d.initQueue[0]
		d.initQueue[0] = nil
		d.initQueue = d.initQueue[1:]
		switch {
		case d.tunnels[p.tu.cfg.Name] != p.tu: // removed meanwhile
			if p.tu.acq == p {
				p.tu.acq = nil
			}
		case p.replaces != nil && p.replaces.dead:
			p.replaces.rekeying = false
		case p.replaces == nil && p.answeredLocked():
			// A quick mode the peer started meanwhile made it.
			d.negotiatedLocked(p.tu, p, p.local, p.remote)
		default:
			next = p
		}
	}
	if len(d.initQueue) == 0 {
		d.initQueue = nil
	}
	d.mu.Unlock()
	if next != nil {
		d.negotiate(next)
	}
}

// answeredLocked reports whether an acquire's tunnel now has a child SA
// where the plan's selectors are: the plan was made where none was, so
// the peer has started one since. Daemon.mu must be held.
func (p *qmPlan) answeredLocked() bool {
	for _, c := range p.tu.children {
		if c.local().Overlaps(p.local) && c.remote().Overlaps(p.remote) {
			return true
		}
	}
	return false
}

// negotiationFailed records a failed negotiation with remote and puts the
// next one of its selector pair off. A failure with a destination the
// tunnel no longer uses (it failed over meanwhile) is only logged. If a
// failover waited for the acquire's outcome, it happens now.
func (d *Daemon) negotiationFailed(plan *qmPlan, remote netip.Addr, reason string) {
	tu := plan.tu
	d.mu.Lock()
	name := tu.cfg.Name
	if d.tunnels[name] != tu {
		d.mu.Unlock()
		return
	}
	if remote.IsValid() && !tu.isCurrent(remote) {
		d.mu.Unlock()
		d.log.Debug("negotiation with a former destination failed", "tunnel", name, "remote", remote, "reason", reason)
		return
	}
	now := d.now()
	tu.lastError = reason
	tu.failures++
	changed := plan.retry.Fail(now, reason, d.cfg.Backoff)
	next := plan.retry.Next
	if c := plan.replaces; c != nil {
		c.rekeying = false
		if !c.dead && c.retryTimer() == nil && (c.lifetime.Time == 0 || next.Before(c.created.Add(c.lifetime.Time))) {
			c.pend().retry = d.clk.AfterFunc(next.Sub(now), func() {
				d.mu.Lock()
				c.pend().retry = nil
				d.mu.Unlock()
				d.rekeyChild(c)
			})
		}
	} else if tu.acq == plan {
		tu.acq, tu.qm = nil, ""
		if tu.state == stateNegotiating {
			tu.state = stateDown
		}
	}
	var due bool
	var heard time.Time
	if h := tu.hist; h != nil && h.due && tu.state == stateDown {
		h.due, heard = false, h.pendingHeard
		due = true
	}
	from := tu.dest()
	d.mu.Unlock()
	if changed {
		d.log.Warn("negotiation failed", "tunnel", name, "local", plan.local.String(), "remote", plan.remote.String(),
			"rekey", plan.replaces != nil, "reason", reason, "next_attempt", next)
		if d.lis != nil {
			d.lis.NegotiationFailed(name, reason)
		}
	} else {
		d.log.Debug("negotiation failed again", "tunnel", name, "local", plan.local.String(), "remote", plan.remote.String(),
			"reason", reason, "failures", plan.retry.Consecutive, "next_attempt", next)
	}
	if due {
		d.failover(tu, from, reason, heard)
	}
}

// negotiatedLocked records a quick mode that made a child SA with the
// given selectors: a plan's, or one the peer started; the pair's back-off
// record goes. Daemon.mu must be held. It reports whether the pair had
// failed before.
func (d *Daemon) negotiatedLocked(tu *tunnel, plan *qmPlan, local, remote selector.Selector) bool {
	r := tu.retry(local, remote)
	if plan != nil {
		r = plan.retry
		if tu.acq == plan {
			tu.acq = nil
		}
	} else {
		tu.peerFailure = ""
	}
	tu.retries = slices.DeleteFunc(tu.retries, func(p pairRetry) bool { return p.local == local && p.remote == remote })
	if len(tu.retries) == 0 {
		tu.retries = nil
	}
	return r != nil && r.Succeed()
}

// peerNegotiationFailed records a quick mode the peer started that failed
// for a tunnel; like this end's, only a change of reason is reported.
func (d *Daemon) peerNegotiationFailed(tu *tunnel, reason string) {
	d.mu.Lock()
	tu.lastError = reason
	if tu.acq == nil {
		tu.qm = ""
	}
	lost := tu.state == stateUp && len(tu.children) == 0 // see removeChild
	if lost {
		tu.state = stateDown
	}
	changed := tu.peerFailure != reason
	tu.peerFailure = reason
	name := tu.cfg.Name
	d.mu.Unlock()
	if changed && d.lis != nil {
		d.lis.NegotiationFailed(name, reason)
	}
	if lost && d.lis != nil {
		d.lis.TunnelDown(name, reason)
	}
}

// negotiationsLocked describes the tunnel's negotiations under way and
// the pairs backing off. Daemon.mu must be held.
func (d *Daemon) negotiationsLocked(tu *tunnel, now time.Time) []ike.NegotiationStatus {
	var out []ike.NegotiationStatus
	add := func(local, remote selector.Selector, rekey bool, state string, r *ike.Retry) {
		st := ike.NegotiationStatus{Local: selector.Of(local), Remote: selector.Of(remote), Rekey: rekey, State: state}
		if r != nil {
			st.Attempts, st.Failures, st.LastError = r.Attempts, r.Failures, r.LastError
			if state == "backing off" && r.Next.After(now) {
				st.NextAttempt = r.Next
			}
		}
		out = append(out, st)
	}
	busy := map[*ike.Retry]bool{}
	if p := tu.acq; p != nil {
		busy[p.retry] = true
		add(p.local, p.remote, false, joinState("negotiating", tu.qm), p.retry)
	}
	for _, c := range tu.children {
		if c.rekeying {
			r := tu.retry(c.local(), c.remote())
			busy[r] = true
			add(c.local(), c.remote(), true, "negotiating", r)
		}
	}
	for _, p := range tu.retries {
		if !busy[p.r] && p.r.Failing() {
			rekey := tu.newest(p.local, p.remote) != nil
			add(p.local, p.remote, rekey, "backing off", p.r)
		}
	}
	ike.SortNegotiations(out)
	return out
}

func joinState(s, detail string) string {
	if detail == "" {
		return s
	}
	return s + " (" + detail + ")"
}
