package v2

import (
	"net/netip"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/selector"
)

// Child SAs this end starts for traffic (ike.Daemon.AcquireFor): the
// acquire proposes, in TSi and TSr, the packet's addresses first and then
// the part of the tunnel's selectors the tunnel's child SAs leave around
// them (ike.AcquirePair: the whole tunnel when it has none), as RFC 7296
// §2.9 has an initiator do, so that a responder that narrows picks the
// child SA configuration holding the packet. A tunnel negotiates one
// acquire at a time; each child rekeys on its own (child.go), with its
// own traffic selectors (§2.8).
//
// A failed acquire puts the next one of its selector pair off by the
// back-off (ike.Backoff); a failed rekey is tried again when its back-off
// ends. Only a change of state (the first failure since a success, a new
// reason) is logged as a warning and reported to the Listener.

// acquire is the child SA a tunnel's acquire negotiates.
type acquire struct {
	local, remote selector.Selector // proposed after the packet's addresses
	src, dst      netip.Addr        // the packet's; invalid when none asked
	retry         *ike.Retry        // the pair's record
}

// wanted reports whether the acquire still asks for a child SA of tunnel
// tu: none of its child SAs covers the packet (or, without one, the
// tunnel is not up). Daemon.mu must be held.
func (a *acquire) wanted(tu *tunnel) bool {
	_, _, ok := ike.AcquireSelectors(tu.cfg, tu.pairs(), a.src, a.dst, tu.state != tunnelUp)
	return ok
}

// proposal returns the traffic selectors the acquire proposes: TSi's and
// TSr's, and the addresses to put first.
func (a *acquire) proposal() (local, remote selector.Set, src, dst netip.Addr) {
	return selector.Of(a.local), selector.Of(a.remote), a.src, a.dst
}

// Acquire starts negotiating a child SA with the tunnel's whole selectors
// for a tunnel that has none.
func (d *Daemon) Acquire(name string) { d.AcquireFor(name, netip.Addr{}, netip.Addr{}) }

// AcquireFor starts negotiating a child SA for traffic from src to dst
// that none of the tunnel's covers (ike.Daemon): a CREATE_CHILD_SA on the
// IKE SA with its destination, or IKE_SA_INIT and IKE_AUTH first when
// there is none. A tunnel known only by an identity waits for its peer.
func (d *Daemon) AcquireFor(name string, src, dst netip.Addr) {
	d.mu.Lock()
	tu := d.tunnels[name]
	if tu == nil || d.closed || tu.acq != nil {
		d.mu.Unlock()
		return
	}
	local, remote, ok := ike.AcquireSelectors(tu.cfg, tu.pairs(), src, dst, tu.state == tunnelDown)
	if !ok {
		d.mu.Unlock()
		return
	}
	if !src.IsValid() || !dst.IsValid() {
		src, dst = netip.Addr{}, netip.Addr{}
	}
	from, to := tu.cfg.Source, tu.remoteAddr()
	if !to.IsValid() {
		tu.lastError = "the destination is known only by its identity: waiting for the peer to connect"
		d.mu.Unlock()
		return
	}
	r := tu.retryFor(local, remote)
	if !r.Due(d.clk.Now()) {
		d.mu.Unlock()
		return
	}
	r.Start()
	tu.attempts++
	tu.acq = &acquire{local: local, remote: remote, src: src, dst: dst, retry: r}
	if tu.state == tunnelDown {
		tu.state = tunnelNegotiating
	}
	d.mu.Unlock()
	d.negotiate(name, from, to)
}

// retryFor returns the back-off record of a selector pair: the one kept
// since its last failure, or a new one, which the tunnel keeps only if
// the pair fails (keepRetry). Daemon.mu must be held.
func (tu *tunnel) retryFor(local, remote selector.Selector) *ike.Retry {
	if r := tu.retries[[2]selector.Selector{local, remote}]; r != nil {
		return r
	}
	return &ike.Retry{}
}

// keepRetry files the back-off record of a failed acquire's pair. An
// established tunnel has none: a map costs a kilobyte even when empty.
// Daemon.mu must be held.
func (tu *tunnel) keepRetry(a *acquire) {
	if tu.retries == nil {
		tu.retries = map[[2]selector.Selector]*ike.Retry{}
	}
	tu.retries[[2]selector.Selector{a.local, a.remote}] = a.retry
}

// proposalFor returns what a new child SA of a tunnel proposes: its
// acquire's, or the tunnel's whole selectors. Daemon.mu must be held.
func (tu *tunnel) proposalFor() (local, remote selector.Set, src, dst netip.Addr) {
	if tu.acq != nil {
		return tu.acq.proposal()
	}
	return selector.Of(tu.cfg.LocalSelector), selector.Of(tu.cfg.RemoteSelector), netip.Addr{}, netip.Addr{}
}

// negotiate gets a child SA for the tunnel on the IKE SA between local and
// remote, making one if needed: at once if fewer than maxInitiating IKE
// SAs this end initiated are still being set up, else when its turn comes
// (initiationEnded).
func (d *Daemon) negotiate(name string, local, remote netip.Addr) {
	for {
		d.mu.Lock()
		sa := d.findIKESA(local, remote)
		if sa == nil {
			if d.closed {
				d.mu.Unlock()
				return
			}
			if d.initiating >= d.maxInitiating {
				w := initTurn{name: name, local: local, remote: remote}
				if tu := d.tunnels[name]; tu != nil {
					w.acq = tu.acq
				}
				d.initQueue = append(d.initQueue, w)
				d.mu.Unlock()
				return
			}
			d.initiating++ // given back by the SA's endTurn
			d.mu.Unlock()
			d.initiate(local, remote, name)
			return
		}
		d.mu.Unlock()
		sa.lock()
		switch sa.state {
		case stateEstablished:
			sa.createChild(name, nil)
		case stateInitSent, stateIntSent, stateAuthSent, stateInitDone:
			sa.hs.waiting = append(sa.hs.waiting, name)
		default: // it died meanwhile: look again
			sa.unlock()
			continue
		}
		sa.unlock()
		return
	}
}

// maxInitiations bounds the IKE SAs this end initiates and has not yet
// established; more acquires wait their turn. A peer's restart with
// thousands of tunnels to it had each tunnel's next packet start an
// IKE_SA_INIT at once: 27,685 retransmissions while 10,000 tunnels came
// back in a soak, as ike/v1 had before its bound (maxInitiations there).
const maxInitiations = 250

// initTurn is an acquire waiting for its turn to initiate an IKE SA.
type initTurn struct {
	name          string
	acq           *acquire // the tunnel's when it queued
	local, remote netip.Addr
}

// initiationEnded gives back an IKE SA's place (endTurn) and lets the
// first acquire waiting for one negotiate again from the start: an IKE SA
// with its peer may be there by now. An acquire its tunnel no longer has
// (the tunnel removed, or failed over to its other destination) is passed
// over, and so is one that a child SA the peer started meanwhile
// answered: it is done.
func (d *Daemon) initiationEnded() {
	d.mu.Lock()
	d.initiating--
	var next initTurn
	for next.name == "" && len(d.initQueue) > 0 && !d.closed {
		w := d.initQueue[0]
		d.initQueue[0] = initTurn{}
		d.initQueue = d.initQueue[1:]
		tu := d.tunnels[w.name]
		switch {
		case tu == nil || tu.acq != w.acq: // passed over
		case w.acq != nil && !w.acq.wanted(tu):
			d.negotiatedLocked(tu)
		default:
			next = w
		}
	}
	if len(d.initQueue) == 0 {
		d.initQueue = nil
	}
	d.mu.Unlock()
	if next.name != "" {
		d.negotiate(next.name, next.local, next.remote)
	}
}

// negotiationFailed records a failed negotiation of a tunnel's acquire and
// puts the next one of its pair off; the listener hears of a change of
// state only.
func (d *Daemon) negotiationFailed(name string, remote netip.Addr, reason string) {
	d.mu.Lock()
	tu := d.tunnels[name]
	if tu == nil {
		d.mu.Unlock()
		return
	}
	tu.lastError = reason
	changed := true
	var next time.Time
	if a := tu.acq; a != nil {
		tu.acq = nil
		tu.failures++
		changed = a.retry.Fail(d.clk.Now(), reason, d.cfg.Backoff)
		next = a.retry.Next
		tu.keepRetry(a)
	}
	if tu.state == tunnelNegotiating {
		tu.state = tunnelDown
	}
	d.mu.Unlock()
	if !changed {
		d.log.Debug("negotiation failed again", "tunnel", name, "remote", remote, "reason", reason, "next_attempt", next)
		return
	}
	d.log.Warn("negotiation failed", "tunnel", name, "remote", remote, "reason", reason, "next_attempt", next)
	if d.lis != nil {
		d.lis.NegotiationFailed(name, reason)
	}
}

// negotiatedLocked records a child SA this end negotiated for a tunnel:
// its acquire is done and its pair's back-off record goes. It reports
// whether the pair had failed before. Daemon.mu must be held.
func (d *Daemon) negotiatedLocked(tu *tunnel) bool {
	a := tu.acq
	if a == nil {
		return false
	}
	tu.acq = nil
	delete(tu.retries, [2]selector.Selector{a.local, a.remote})
	if len(tu.retries) == 0 {
		tu.retries = nil
	}
	return a.retry.Succeed()
}

// negotiationsLocked describes the tunnel's negotiations under way and
// the pairs backing off. Daemon.mu must be held.
func (d *Daemon) negotiationsLocked(tu *tunnel, now time.Time) []ike.NegotiationStatus {
	var out []ike.NegotiationStatus
	add := func(local, remote selector.Set, rekey bool, state string, r *ike.Retry) {
		st := ike.NegotiationStatus{Local: local, Remote: remote, Rekey: rekey, State: state,
			Attempts: r.Attempts, Failures: r.Failures, LastError: r.LastError}
		if state == "backing off" && r.Next.After(now) {
			st.NextAttempt = r.Next
		}
		out = append(out, st)
	}
	if a := tu.acq; a != nil {
		add(selector.Of(a.local), selector.Of(a.remote), false, "negotiating", a.retry)
	}
	for k, r := range tu.retries {
		if (tu.acq == nil || tu.acq.retry != r) && r.Failing() {
			add(selector.Of(k[0]), selector.Of(k[1]), false, "backing off", r)
		}
	}
	for _, c := range tu.children {
		switch {
		case c.inRekey:
			add(c.local, c.remote, true, "negotiating", c.rekeys())
		case c.rekeyRetry != nil && c.rekeyRetry.Failing():
			add(c.local, c.remote, true, "backing off", c.rekeyRetry)
		}
	}
	ike.SortNegotiations(out)
	return out
}
