package v1

import (
	"fmt"
)

// aggressiveResponder runs aggressive mode as responder (the exchange
// diagram is at aggressiveInitiator). The peer's identity comes in the
// first message: the pre-shared key is found by it, whole and then with
// user@ stripped (the seed), then by the peer's address.
func (d *Daemon) aggressiveResponder(ex *exchange, first packet) {
	p := &phase1{d: d, ex: ex, sa: ex.sa}
	err := p.runAggressiveResponder(first)
	p.zero()
	if err != nil {
		d.phase1Failed(p, err)
		return
	}
	d.phase1Done(p)
}

func (p *phase1) runAggressiveResponder(first packet) error {
	if err := p.readAggressive1(first); err != nil {
		return err
	}
	if err := p.sendAggressive2(); err != nil {
		return err
	}
	pk, m, err := p.readPhase1(true)
	if err != nil {
		return err
	}
	p.processNATD(m, pk)
	if err := p.verifyAuth(m); err != nil {
		return err
	}
	p.adoptEndpoints(pk)
	p.ex.done(pk.data)
	if p.sawInitialContact(m) {
		defer p.d.initialContact(p.sa)
	}
	return nil
}

func (p *phase1) readAggressive1(first packet) error {
	m, err := ParseMessage(first.data)
	if err != nil {
		return err
	}
	sp, ip := m.First(PayloadSA), m.First(PayloadID)
	if sp == nil {
		return unexpectedError(PayloadSA, m)
	}
	if ip == nil {
		return unexpectedError(PayloadID, m)
	}
	sa, err := ParseSA(sp.Body)
	if err != nil {
		return err
	}
	p.saiB = append([]byte(nil), sp.Body...)
	p.idiB = append([]byte(nil), ip.Body...)
	idp, err := ParseID(ip.Body)
	if err != nil {
		return err
	}
	if p.remoteID, err = identityOf(idp); err != nil {
		return fmt.Errorf("%w: %v", errUnknownPeer, err)
	}
	if p.gxi, p.ni, err = nonceKE(m); err != nil {
		return err
	}
	p.sawVendorIDs(m)
	d := p.d
	d.mu.Lock()
	local, remote := p.sa.local.Addr(), p.sa.remote.Addr()
	if t := d.matchTunnel(local, remote, p.remoteID); t != nil {
		tc := *t
		p.tunnel = &tc
	}
	p.psk = d.pskFor(p.remoteID, remote)
	p.forceEncap = d.wantsEncap(local, remote)
	p.dpd = d.wantDPDLocked(local, remote, p.remoteID)
	d.mu.Unlock()
	if p.tunnel == nil {
		return fmt.Errorf("%w: no tunnel for %v at %v", errUnknownPeer, p.remoteID, remote)
	}
	pol, t, err := p.choosePolicy(sa)
	if err != nil {
		if p.psk == nil {
			return fmt.Errorf("%w: no pre-shared key for %v", errUnknownPeer, p.remoteID)
		}
		return fmt.Errorf("%w: %v", errNoProposal, err)
	}
	p.policy = pol
	p.echo = chosen{sa.Proposals[0].Number, t}
	p.localID = localIdentity(p.tunnel, local)
	return nil
}

func (p *phase1) sendAggressive2() error {
	if err := p.newDH(); err != nil {
		return err
	}
	p.gxr, p.nr = p.dh.Public, p.d.nonce()
	if err := p.deriveKeys(); err != nil {
		return err
	}
	p.idrB = phase1ID(p.localID).marshal()
	auth, err := p.authPayloads()
	if err != nil {
		return err
	}
	ps := []outPayload{{PayloadSA, p.responderSA()}, {PayloadKE, p.gxr}, {PayloadNonce, p.nr}, {PayloadID, p.idrB}}
	ps = append(ps, auth...)
	ps = append(ps, p.certRequests()...)
	ps = append(ps, p.vendorIDs()...)
	ps = append(ps, p.natdPayloads()...)
	p.ex.send(encodeMessage(p.header(), ps))
	p.setState(stateAMAuthR)
	return nil
}
