package v2

import (
	"encoding/binary"

	"github.com/ismgw/ism/ike"
)

// The responder's side of an IKE SA rekey (RFC 7296 §1.3.2, §2.8). It is
// refused with TEMPORARY_FAILURE while this end creates, rekeys or deletes
// a child SA of the IKE SA (§2.25.2) or is closing the SA (§2.8.2); with
// NO_PROPOSAL_CHOSEN or INVALID_KE_PAYLOAD as in IKE_SA_INIT (§1.3: a KE
// is mandatory). Accepted, the new SA takes over the child SAs at once and
// the old one waits for the initiator's Delete — unless this end's own
// rekey of the SA is out: then the new SA waits, unsettled, for the
// nonces to decide (ike_rekey.go).

// temporaryFailure answers the peer's request with TEMPORARY_FAILURE.
func (sa *ikeSA) temporaryFailure() {
	sa.d.count(func(c *ike.Counters) { c.TemporaryFailures++ })
	sa.respond(CreateChildSA, []Payload{notifyPayload(TemporaryFailure, nil)})
}

// rekeyIKEResponder answers the peer's rekey of the IKE SA.
func (sa *ikeSA) rekeyIKEResponder(m *Message, saP *SA) {
	d := sa.d
	if sa.state != stateEstablished || sa.win.outstanding(reqChild) || sa.win.outstanding(reqChildDelete) {
		sa.temporaryFailure()
		return
	}
	var ke KE
	okKE, errKE := m.decode(PayloadKE, &ke)
	np, okN := m.Get(PayloadNonce)
	var ni []byte
	var errN error
	if okN {
		ni, errN = parseNonce(np.Body)
	}
	if !okKE || errKE != nil || !okN || errN != nil {
		sa.respond(CreateChildSA, []Payload{notifyPayload(InvalidSyntax, nil)})
		return
	}
	d.mu.Lock()
	suites := rekeySuites(*sa.suite, d.cfg.suites)
	d.mu.Unlock()
	su, prop, addke, ok := chooseIKE(suites, saP, 8, true)
	if !ok {
		d.count(func(c *ike.Counters) { c.NoProposalChosen++ })
		sa.respond(CreateChildSA, []Payload{notifyPayload(NoProposalChosen, nil)})
		return
	}
	if int(ke.Group) != su.group {
		d.count(func(c *ike.Counters) { c.InvalidKE++ })
		sa.respond(CreateChildSA, []Payload{notifyPayload(InvalidKEPayload, binary.BigEndian.AppendUint16(nil, uint16(su.group)))})
		return
	}
	g, _ := ike.LookupGroup(su.group)
	kex, err := g.GenerateKey(d.rand)
	if err != nil {
		sa.respond(CreateChildSA, []Payload{notifyPayload(NoProposalChosen, nil)})
		return
	}
	defer kex.Zero()
	shared, err := kex.Shared(ke.Data)
	if err != nil {
		sa.respond(CreateChildSA, []Payload{notifyPayload(InvalidSyntax, nil)})
		return
	}
	nr := make([]byte, nonceLen)
	d.random(nr)
	d.mu.Lock()
	spi := d.freeSPILocked()
	d.mu.Unlock()
	peerSPI := binary.BigEndian.Uint64(prop.SPI)
	chosen := chosenIKE(su, prop.Number, addke)
	chosen.Proposals[0].SPI = binary.BigEndian.AppendUint64(nil, spi)
	ps := []Payload{{Type: PayloadSA, Body: chosen.marshal()}, {Type: PayloadNonce, Body: nr},
		{Type: PayloadKE, Body: (&KE{Group: uint16(su.group), Data: kex.Public}).marshal()}}
	if len(su.addke) > 0 {
		// RFC 9370 §2.2.4: the new SA comes after the additional key
		// exchanges, in IKE_FOLLOWUP_KE.
		f := &followupR{methods: su.addke, secrets: [][]byte{shared},
			finish: func(sa *ikeSA, secrets [][]byte) {
				extra := joinSecrets(secrets[1:])
				defer clear(extra)
				sa.rekeyedByPeer(peerSPI, spi, su, ni, nr, secrets[0], extra)
			}}
		sa.respond(CreateChildSA, append(ps, sa.awaitFollowup(f)))
		return
	}
	sa.respond(CreateChildSA, ps)
	sa.rekeyedByPeer(peerSPI, spi, su, ni, nr, shared, nil)
}

// rekeyedByPeer makes the new IKE SA of the peer's rekey, once its key
// exchanges are done, and moves the child SAs to it — unless this end's
// own rekey of the SA is out: then the new SA waits, unsettled, for the
// nonces to decide (§2.8.2, ike_rekey.go). The SA's mutex must be held.
func (sa *ikeSA) rekeyedByPeer(spiI, spiR uint64, su suite, ni, nr, shared, extra []byte) {
	d := sa.d
	collision := sa.rk != nil && sa.win.outstanding(reqIKERekey)
	n, err := sa.newSuccessor(false, collision, spiI, spiR, su, ni, nr, shared, extra)
	if err != nil {
		d.log.Warn("IKE SA rekey by the peer failed", "sa", sa.String(), "err", err)
		return
	}
	if collision {
		// Both ends rekey at once (§2.8.2): the nonces decide when this
		// end's answer comes.
		d.log.Info("IKE SA rekey collision", "sa", sa.String(), "peer's", n.String())
		d.count(func(c *ike.Counters) { c.RekeyCollisions++ })
		sa.rk.peer, sa.rk.peerNi, sa.rk.peerNr = n, ni, nr
		return
	}
	sa.handTo(n)
}
