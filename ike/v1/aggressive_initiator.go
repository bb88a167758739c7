package v1

import (
	"errors"
	"fmt"
)

// aggressiveInitiator runs aggressive mode as initiator (RFC 2409 §5,
// RFC 3947 §3.2):
//
//	HDR, SA, KE, Ni, IDii, VID                   -->
//	               <--  HDR, SA, KE, Nr, IDir, [CERT,] HASH_R|SIG_R, VID, NAT-D, NAT-D
//	HDR, [CERT,] HASH_I|SIG_I, NAT-D, NAT-D      -->  (on 4500 behind a NAT)
//
// Every proposed transform must share the DH group of the KE payload: the
// group of the first usable policy.
func (d *Daemon) aggressiveInitiator(p *phase1) error {
	if err := p.sendAggressive1(); err != nil {
		return err
	}
	pk, err := p.readAggressive2()
	if err != nil {
		return err
	}
	p.float()
	if err := p.sendAggressive3(); err != nil {
		return err
	}
	p.ex.done(pk.data)
	return nil
}

func (p *phase1) sendAggressive1() error {
	d := p.d
	d.mu.Lock()
	group := 0
	var ts []Transform
	for _, pol := range d.cfg.Policies {
		if !p.usable(pol, p.psk) || (group != 0 && pol.Group != group) {
			continue
		}
		group = pol.Group
		ts = append(ts, phase1Transform(uint8(len(ts)+1), pol))
	}
	d.mu.Unlock()
	if len(ts) == 0 {
		return errors.New("v1: no IKE policy usable with this peer (no pre-shared key or certificate)")
	}
	sa := SA{DOI: DOIIPsec, Situation: SituationIdentityOnly, Proposals: []Proposal{{Number: 1, Protocol: ProtoISAKMP, Transforms: ts}}}
	p.saiB = sa.marshal()
	p.policy.Group = group
	if err := p.newDH(); err != nil {
		return err
	}
	p.gxi, p.ni = p.dh.Public, d.nonce()
	p.idiB = phase1ID(p.localID).marshal()
	ps := []outPayload{{PayloadSA, p.saiB}, {PayloadKE, p.gxi}, {PayloadNonce, p.ni}, {PayloadID, p.idiB}}
	ps = append(ps, p.vendorIDs()...)
	p.ex.send(encodeMessage(p.header(), ps))
	return nil
}

func (p *phase1) readAggressive2() (packet, error) {
	pk, m, err := p.readPhase1(true)
	if err != nil {
		return pk, err
	}
	sp := m.First(PayloadSA)
	if sp == nil {
		return pk, unexpectedError(PayloadSA, m)
	}
	pol, err := p.acceptResponderSA(sp.Body)
	if err != nil {
		return pk, fmt.Errorf("%w: %v", errNoProposal, err)
	}
	p.policy = pol
	p.sawVendorIDs(m)
	if p.gxr, p.nr, err = nonceKE(m); err != nil {
		return pk, err
	}
	if err := p.checkIDr(m); err != nil {
		return pk, err
	}
	p.processNATD(m, pk)
	if err := p.deriveKeys(); err != nil {
		return pk, err
	}
	if err := p.verifyAuth(m); err != nil {
		return pk, err
	}
	return pk, nil
}

func (p *phase1) sendAggressive3() error {
	auth, err := p.authPayloads()
	if err != nil {
		return err
	}
	ps := append(auth, p.natdPayloads()...)
	ps = append(ps, p.initialContactPayload()...)
	p.ex.send(encodeMessage(p.header(), ps))
	return nil
}
