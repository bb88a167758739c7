package v2

import (
	"fmt"
	"net/netip"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// The initiator's IKE_AUTH (RFC 7296 §1.2), which also makes the first
// child SA, for the tunnel that started the IKE SA:
//
//	HDR, SK {IDi, [CERT+,] [CERTREQ,] [IDr,] AUTH, [N(INITIAL_CONTACT),]
//	         [N(USE_TRANSPORT_MODE),] SAi2, TSi, TSr}  -->
//	             <--  HDR, SK {IDr, [CERT+,] AUTH, [N(USE_TRANSPORT_MODE),] SAr2, TSi, TSr}
//
// When the responder's AUTH does not verify, this end tells it with an
// INFORMATIONAL AUTHENTICATION_FAILED (§2.21.2) and the IKE SA is gone.
// An error notify about the child SA (NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE)
// leaves the IKE SA up without it (§1.2).

// authExchange is what the initiator's IKE_AUTH keeps between request and
// response.
type authExchange struct {
	tunnel *ike.Tunnel // the configuration's, shared
	offer  childOffer
	idi    []byte // IDi body
	plan   authPlan
	child  childExchange // the child SA's proposal: selectors, and the packet's addresses
}

// startAuth sends IKE_AUTH for the first waiting tunnel.
func (sa *ikeSA) startAuth() {
	d := sa.d
	if len(sa.hs.waiting) == 0 {
		sa.fail("no tunnel wants the IKE SA any more")
		return
	}
	name := sa.hs.waiting[0]
	sa.hs.waiting = sa.hs.waiting[1:]
	d.mu.Lock()
	tu := d.tunnels[name]
	var ex authExchange
	reason := "tunnel removed"
	if tu != nil {
		ex.tunnel = tu.cfg
		ex.child.local, ex.child.remote, ex.child.src, ex.child.dst = tu.proposalFor()
		var err error
		if ex.plan, err = d.planAuth(sa, 0, tu.cfg.RemoteIdentity(), sa.remote.Addr()); err != nil {
			tu, reason = nil, err.Error()
		}
	}
	first := d.onlySA(sa)
	certReq := d.cfg.certReq
	d.mu.Unlock()
	if tu == nil {
		remote, heard := sa.remote.Addr(), sa.heardAt()
		sa.after(func() { d.setupFailed(name, remote, reason, heard) })
		sa.fail(reason)
		return
	}
	sa.localID, sa.authMethod = ex.tunnel.LocalIdentity(), ex.plan.method
	// setupFailed ends the IKE SA and fails the tunnel's negotiation.
	setupFailed := func(sa *ikeSA, reason string) {
		remote, heard := sa.remote.Addr(), sa.heardAt()
		sa.after(func() { d.setupFailed(name, remote, reason, heard) })
		sa.fail(reason)
	}
	sa.request(&request{exchange: IKEAuth,
		build: func(sa *ikeSA) ([]Payload, error) {
			// A request that cannot be built is not sent and has no
			// timeout: the SA ends here, or it would wait for ever,
			// holding its initiation place (negotiate).
			offer, err := sa.offerFor(ex.tunnel, 0)
			if err != nil {
				setupFailed(sa, "IKE_AUTH not sent: "+err.Error())
				return nil, err
			}
			ex.offer = offer
			id := idPayload(sa.localID)
			ex.idi = id.marshal()
			certs, auth, err := sa.ownAuth(ex.plan, ex.idi, sa.win.nextID) // build runs just before the request gets nextID
			if err != nil {
				setupFailed(sa, "IKE_AUTH not sent: "+err.Error())
				return nil, err
			}
			ps := append([]Payload{{Type: PayloadIDi, Body: ex.idi}}, certs...)
			if ex.plan.method.Certificate() && len(certReq) > 0 {
				ps = append(ps, certReqPayload(certReq))
			}
			if r := ex.tunnel.RemoteID; !r.IsZero() {
				idr := idPayload(r)
				ps = append(ps, Payload{Type: PayloadIDr, Body: idr.marshal()})
			}
			ps = append(ps, auth)
			if first {
				// §2.4: "the first IKE SA with a peer": it may drop
				// whatever it still has from an earlier life of ours.
				ps = append(ps, notifyPayload(InitialContact, nil))
			}
			return append(ps, childPayloads(ex.tunnel, offer, ex.child.local, ex.child.remote, ex.child.src, ex.child.dst)...), nil
		},
		onResponse: func(sa *ikeSA, m *Message) { sa.ikeAuthResponse(m, &ex) },
		onTimeout:  func(sa *ikeSA) { setupFailed(sa, "the peer did not answer IKE_AUTH") },
	})
}

// onlySA reports whether sa is the only IKE SA with its peer. Daemon.mu
// must be held.
func (d *Daemon) onlySA(sa *ikeSA) bool {
	n := d.idx.peers[sa.remote.Addr()]
	if sa.filed {
		n-- // itself
	}
	return n <= 0
}

// offerFor allocates inbound SPIs and returns the child SA offer of a
// tunnel. AllocateSPI is the one Installer call made with an SA's mutex
// held: it returns a number and calls nothing back.
func (sa *ikeSA) offerFor(t *ike.Tunnel, pfs int) (childOffer, error) {
	o := childOffer{set: t.TransformSet, spis: map[transform.Protocol]uint32{}, pfs: pfs, esn: t.ESN}
	for _, tr := range t.TransformSet {
		if _, ok := o.spis[tr.Protocol]; ok {
			continue
		}
		spi, err := sa.d.inst.AllocateSPI(t.Name, tr.Protocol, sa.local.Addr())
		if err != nil {
			return o, fmt.Errorf("v2: no SPI for tunnel %s: %w", t.Name, err)
		}
		o.spis[tr.Protocol] = spi
	}
	return o, nil
}

// childPayloads are the payloads that propose a child SA: with src and
// dst, when valid, first in TSi and TSr (§2.9).
func childPayloads(t *ike.Tunnel, o childOffer, local, remote selector.Set, src, dst netip.Addr) []Payload {
	var ps []Payload
	if t.SAMode == ipsec.Transport {
		ps = append(ps, notifyPayload(UseTransportMode, nil))
	}
	return append(ps, Payload{Type: PayloadSA, Body: o.sa().marshal()},
		Payload{Type: PayloadTSi, Body: tsPayload(src, local)},
		Payload{Type: PayloadTSr, Body: tsPayload(dst, remote)})
}

// ikeAuthResponse processes the responder's IKE_AUTH.
func (sa *ikeSA) ikeAuthResponse(m *Message, ex *authExchange) {
	d := sa.d
	defer ex.plan.psk.Zero() // the exchange is over, whatever its end
	name := ex.tunnel.Name
	failed := func(reason string) {
		remote, heard := sa.remote.Addr(), sa.heardAt()
		sa.after(func() { d.setupFailed(name, remote, reason, heard) })
		sa.fail(reason)
	}
	if e := peerError(m); e != nil && e.Type == AuthenticationFailed {
		d.count(func(c *ike.Counters) { c.AuthFailed++ })
		failed("the peer refused this end's authentication (AUTHENTICATION_FAILED)")
		return
	}
	var idr ID
	var auth Auth
	okID, errID := m.decode(PayloadIDr, &idr)
	okA, errA := m.decode(PayloadAUTH, &auth)
	if !okID || !okA || errID != nil || errA != nil {
		failed("IKE_AUTH response without valid IDr and AUTH")
		return
	}
	peerID, err := idr.identity()
	if err != nil {
		failed(err.Error())
		return
	}
	if r := ex.tunnel.RemoteID; !r.IsZero() && !r.Equal(peerID) {
		d.count(func(c *ike.Counters) { c.AuthFailed++ })
		sa.sendAuthFailed()
		failed(fmt.Sprintf("the peer is %v, not %v", peerID, r))
		return
	}
	plan := ex.plan
	if plan.method == ike.AuthPSK {
		// The key of the identity the peer presents, which may not
		// be the one this end looked for.
		d.mu.Lock()
		plan.psk = d.pskFor(peerID, sa.remote.Addr())
		d.mu.Unlock()
		defer plan.psk.Zero()
	}
	if plan.method == ike.AuthPSK && plan.psk == nil {
		err = errNoCredential
	} else {
		err = sa.checkPeerAuth(m, auth, plan, peerID, idr.marshal())
	}
	if err != nil {
		d.count(func(c *ike.Counters) { c.AuthFailed++ })
		d.log.Info("the responder's authentication failed", "remote", sa.remote, "peer", peerID.String(), "err", err)
		sa.sendAuthFailed()
		failed("the peer's AUTH does not verify: " + err.Error())
		return
	}
	sa.remoteID = peerID
	ni, nr, waiting := sa.hs.ni, sa.hs.nr, sa.hs.waiting
	sa.establish()
	if e := peerError(m); e != nil {
		d.count(func(c *ike.Counters) {
			if e.Type == NoProposalChosen {
				c.NoProposalChosen++
			}
		})
		sa.after(func() { d.negotiationFailed(name, sa.remote.Addr(), "child SA refused: "+e.Type.String()) })
	} else if err := sa.acceptChild(m, &childExchange{tunnel: ex.tunnel, offer: ex.offer, ni: ni, nr: nr,
		local: ex.child.local, remote: ex.child.remote}); err != nil {
		sa.after(func() { d.negotiationFailed(name, sa.remote.Addr(), err.Error()) })
	}
	for _, w := range waiting {
		sa.createChild(w, nil)
	}
}

// establish marks the IKE SA authenticated both ways and arms its
// timers.
func (sa *ikeSA) establish() {
	d := sa.d
	sa.setState(stateEstablished)
	sa.endTurn()
	// Both AUTHs are done: what they sign (§2.15) is not needed again.
	hs := sa.hs
	sa.hs = nil
	hs.zero()
	sa.keys.dropAuth()
	sa.created = d.sched.nowStamp()
	sa.heard()
	d.count(func(c *ike.Counters) { c.Phase1Established++ })
	d.mu.Lock()
	if d.halfOpen[respKey{sa.spiI, sa.remote.Addr()}] == sa {
		delete(d.halfOpen, respKey{sa.spiI, sa.remote.Addr()})
	}
	d.mu.Unlock()
	d.log.Info("IKE SA established", "local", sa.local, "remote", sa.remote, "peer", sa.remoteID.String(),
		"natt", sa.natt, "initiator", sa.initiator)
	sa.armTimers()
}

// armTimers arms an established IKE SA's timers: its rekey (§2.8) and
// the end of its lifetime, keepalives behind a NAT, and liveness checks.
// The SA's mutex must be held.
func (sa *ikeSA) armTimers() {
	sa.armLifetime(sa.d.jitter(sa.lifetime()))
	sa.armKeepalive()
	sa.armLiveness()
}
