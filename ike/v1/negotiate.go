package v1

import (
	"errors"
	"net/netip"

	"github.com/ismgw/ism/ike"
)

// startPhase1 starts a phase 1 as initiator to remote for tunnel tu, with
// the quick modes in waiting to start once it is established.
// It returns the new IKE SA, or nil if the daemon is closed.
func (d *Daemon) startPhase1(mode ike.Phase1Mode, tu *tunnel, local, remote netip.Addr, waiting []*qmPlan) *ikeSA {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	sa := d.newIKESA(true, mode, netip.AddrPortFrom(local, portIKE), netip.AddrPortFrom(remote, portIKE))
	if len(waiting) > 0 {
		sa.queue().waiting = waiting
	}
	t := tu.current()
	p := &phase1{d: d, sa: sa, tunnel: &t, localID: t.LocalIdentity(), remoteID: t.RemoteIdentity(), forceEncap: t.UDPEncap}
	p.psk = d.pskFor(p.remoteID, remote)
	p.dpd = d.wantDPDLocked(local, remote, p.remoteID)
	p.ex = d.newExchangeLocked(sa, 0)
	run := d.mainModeInitiator
	if mode == ike.AggressiveMode {
		run = d.aggressiveInitiator
	}
	ok := d.spawnLocked(func() {
		defer d.initiationEnded()
		err := run(p)
		p.zero()
		if err != nil {
			d.phase1Failed(p, err)
			return
		}
		d.phase1Done(p)
	})
	if !ok {
		delete(d.halfOpen, sa.icookie)
		d.mu.Unlock()
		return nil
	}
	d.initiating++ // the goroutine's initiationEnded waits for d.mu
	d.mu.Unlock()
	return sa
}

// phase1Done completes phase 1 in either role: keys are in place, the
// peer is authenticated. Waiting tunnels start their quick modes and
// messages that came early are dispatched.
func (d *Daemon) phase1Done(p *phase1) {
	sa := p.sa
	d.mu.Lock()
	sa.remoteID = p.remoteID
	d.mu.Unlock()
	pending, waiting := d.establish(sa, p.policy.Lifetime)
	d.mu.Lock()
	d.heardLocked(sa)
	d.dpdArmSALocked(sa.peer(), nil, sa)
	d.mu.Unlock()
	d.log.Info("phase 1 established", "local", sa.local, "remote", sa.remote, "mode", sa.mode.String(),
		"policy", p.policy.String(), "remoteID", p.remoteID.String(), "natt", sa.natt, "dpd", sa.localDPD, "peer_dpd", sa.peerDPD)
	// A renegotiated phase 1 replaces the older SAs with the peer.
	d.mu.Lock()
	var older []*ikeSA
	for o := range d.pairs.sasOf(sa.peer()) {
		if o != sa && o.established && !o.dead && o.created.Before(sa.created) {
			older = append(older, o)
		}
	}
	for _, o := range older {
		sa.rekeys = max(sa.rekeys, o.rekeys+1)
	}
	if len(older) > 0 {
		d.counters.Rekeys++
	}
	for _, o := range older { // a rekey: the tunnels move to the new SA
		for _, tu := range d.usersLocked(o) {
			d.setSALocked(tu, sa)
		}
	}
	d.mu.Unlock()
	if sa.initiator {
		for _, o := range older {
			d.sendDeleteIKESA(o)
			d.removeIKESA(o)
		}
	}
	for _, plan := range waiting {
		d.startQuickMode(plan, sa)
	}
	for _, pk := range pending {
		d.Receive(pk.local, pk.remote, pk.data)
	}
}

// phase1Failed ends a failed phase 1: it tells the peer when that helps,
// counts, forgets the SA and reports the tunnels that waited for it. A
// tunnel that waited for a phase 1 the peer initiated (or that something
// claiming to be the peer did) starts one of its own instead: that one's
// outcome is the tunnel's.
func (d *Daemon) phase1Failed(p *phase1, err error) {
	sa := p.sa
	var nt NotifyType
	var n notifyError
	switch {
	case errors.Is(err, errAuth):
		nt = NotifyAuthenticationFailed
		d.count(func(c *ike.Counters) { c.AuthFailed++ })
	case errors.Is(err, errNoProposal):
		nt = NotifyNoProposalChosen
		d.count(func(c *ike.Counters) { c.NoProposalChosen++ })
	case errors.Is(err, errUnknownPeer):
		nt = NotifyAuthenticationFailed
		d.count(func(c *ike.Counters) { c.AuthFailed++ })
	case errors.Is(err, ErrMalformed):
		nt = NotifyPayloadMalformed
		d.count(func(c *ike.Counters) { c.Malformed++ })
	case errors.As(err, &n):
		if n.t == NotifyNoProposalChosen {
			d.count(func(c *ike.Counters) { c.NoProposalChosen++ })
		}
		if n.t == NotifyAuthenticationFailed {
			d.count(func(c *ike.Counters) { c.AuthFailed++ })
		}
	}
	if nt != 0 && !errors.Is(err, errTimeout) {
		d.sendNotify(sa, nt, ProtoISAKMP, nil)
	}
	reason := "phase 1: " + errString(err)
	d.log.Warn("phase 1 failed", "local", sa.local, "remote", sa.remote, "err", err)
	d.mu.Lock()
	sa.failure = reason
	var waiting []*qmPlan
	if q := sa.queued; q != nil {
		waiting, q.waiting = q.waiting, nil
	}
	var failed, retry []*qmPlan
	var peerTunnel string
	if sa.initiator {
		failed = waiting
	} else {
		retry = waiting
		if p.tunnel != nil {
			peerTunnel = p.tunnel.Name
		}
	}
	remote, initiator := sa.remote.Addr(), sa.initiator
	lastHeard := sa.lastRecv
	if lastHeard.IsZero() {
		lastHeard = sa.created
	}
	if dp := d.dpd[sa.peer()]; dp != nil {
		lastHeard = later(lastHeard, dp.lastIn)
	}
	d.mu.Unlock()
	d.removeIKESA(sa)
	for _, plan := range failed {
		d.negotiationFailed(plan, remote, reason)
	}
	if peerTunnel != "" {
		d.mu.Lock()
		tu := d.tunnels[peerTunnel]
		d.mu.Unlock()
		if tu != nil {
			d.peerNegotiationFailed(tu, reason)
		}
	}
	for _, plan := range retry {
		// The phase 1 the peer started failed: this end's own one
		// decides the plan's outcome.
		d.negotiate(plan)
	}
	if initiator && setupFailure(err) {
		for _, plan := range waiting {
			d.setupFailed(plan.tu.cfg.Name, remote, reason, lastHeard)
		}
	}
}

// errNoProposal: no proposal of the peer is acceptable.
var errNoProposal = errors.New("v1: no proposal chosen")

// errUnknownPeer: no tunnel or key for the peer's identity.
var errUnknownPeer = errors.New("v1: unknown peer identity")

// readPhase1 reads the next message of a phase 1 exchange, plaintext or
// encrypted, and turns an error notification from the peer into an error.
func (p *phase1) readPhase1(retransmit bool) (packet, *Message, error) {
	for {
		pk, err := p.ex.read(retransmit)
		if err != nil {
			return pk, nil, err
		}
		h := Header(pk.data)
		if h.Exchange() == ExchangeInformational {
			if err := p.d.phase1Notify(p.sa, pk); err != nil {
				return pk, nil, err
			}
			continue
		}
		if h.Exchange() != p.exchangeType() {
			p.d.count(func(c *ike.Counters) { c.Dropped++ })
			continue
		}
		var m *Message
		if h.Flags()&FlagEncryption != 0 {
			m, err = p.ex.open(pk)
		} else {
			m, err = ParseMessage(pk.data)
		}
		if err != nil {
			return pk, nil, err
		}
		return pk, m, nil
	}
}

func (p *phase1) exchangeType() ExchangeType {
	if p.sa.mode == ike.AggressiveMode {
		return ExchangeAggressive
	}
	return ExchangeMain
}

// header returns the header fields for a phase 1 message.
func (p *phase1) header() HeaderFields { return p.ex.header(p.exchangeType()) }

// adoptEndpoints moves the SA to the endpoints an authenticated message
// arrived on (the peer floated to 4500, or its NAT mapping changed).
func (p *phase1) adoptEndpoints(pk packet) {
	d := p.d
	d.mu.Lock()
	defer d.mu.Unlock()
	p.sa.local, p.sa.remote = pk.local, pk.remote
	if pk.local.Port() == portNATT {
		p.sa.natt = true
	}
}

// initialContactPayload returns an INITIAL-CONTACT notify when no other
// IKE SA with the peer exists (RFC 2407 §4.6.3.3).
func (p *phase1) initialContactPayload() []outPayload {
	d := p.d
	d.mu.Lock()
	defer d.mu.Unlock()
	for o := range d.pairs.sasOf(p.sa.peer()) {
		if o != p.sa && !o.dead && o.established {
			return nil
		}
	}
	cookies := append(append([]byte(nil), p.sa.icookie[:]...), p.sa.rcookie[:]...)
	n := Notify{DOI: DOIIPsec, Protocol: ProtoISAKMP, Type: NotifyInitialContact, SPI: cookies}
	return []outPayload{{PayloadNotify, n.marshal()}}
}

// sawInitialContact acts on an INITIAL-CONTACT notify in a phase 1 message.
func (p *phase1) sawInitialContact(m *Message) bool {
	for _, np := range m.All(PayloadNotify) {
		if n, err := ParseNotify(np.Body); err == nil && n.Type == NotifyInitialContact {
			return true
		}
	}
	return false
}
