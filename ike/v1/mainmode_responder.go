package v1

import (
	"fmt"

	"github.com/ismgw/ism/ike"
)

// mainModeResponder runs main mode as responder for the peer's first
// message first (the exchange diagram is at mainModeInitiator). With a
// pre-shared key the key must be found by the peer's address: its identity
// is encrypted with that key (the seed: FQDN peers with pre-shared keys
// need aggressive mode).
func (d *Daemon) mainModeResponder(ex *exchange, first packet) {
	sa := ex.sa
	p := &phase1{d: d, ex: ex, sa: sa}
	err := p.runMainResponder(first)
	p.zero()
	if err != nil {
		d.phase1Failed(p, err)
		return
	}
	d.phase1Done(p)
}

func (p *phase1) runMainResponder(first packet) error {
	if err := p.readSAi(first); err != nil {
		return err
	}
	p.sendSAr()
	if err := p.readKEi(); err != nil {
		return err
	}
	if err := p.sendKEr(); err != nil {
		return err
	}
	pk, m, err := p.readIDi()
	if err != nil {
		return err
	}
	// The peer may have floated to 4500 with this message (RFC 3947 §4):
	// answer from where it arrived, or the peer follows us back to 500
	// and sends its ESP there.
	p.adoptEndpoints(pk)
	if err := p.sendIDr(); err != nil {
		return err
	}
	p.ex.done(pk.data)
	if p.sawInitialContact(m) {
		defer p.d.initialContact(p.sa)
	}
	return nil
}

// chosen is the proposal a responder echoes.
type chosen struct {
	number uint8
	t      Transform
}

func (p *phase1) readSAi(first packet) error {
	m, err := ParseMessage(first.data)
	if err != nil {
		return err
	}
	sp := m.First(PayloadSA)
	if sp == nil {
		return unexpectedError(PayloadSA, m)
	}
	sa, err := ParseSA(sp.Body)
	if err != nil {
		return err
	}
	p.saiB = append([]byte(nil), sp.Body...)
	p.sawVendorIDs(m)
	d := p.d
	d.mu.Lock()
	local, remote := p.sa.local.Addr(), p.sa.remote.Addr()
	p.tunnel = d.matchTunnel(local, remote, p.remoteID)
	if p.tunnel != nil {
		t := *p.tunnel
		p.tunnel = &t
		p.psk = d.pskFor(t.RemoteID, remote)
	} else {
		p.psk = d.pskFor(p.remoteID, remote)
	}
	p.forceEncap = d.wantsEncap(local, remote)
	p.dpd = d.wantDPDLocked(local, remote, ike.Identity{})
	d.mu.Unlock()
	pol, t, err := p.choosePolicy(sa)
	if err != nil {
		return fmt.Errorf("%w: %v", errNoProposal, err)
	}
	p.policy = pol
	p.echo = chosen{sa.Proposals[0].Number, t}
	return nil
}

// responderSA is the SA payload a responder sends: the chosen transform.
func (p *phase1) responderSA() []byte {
	sa := SA{DOI: DOIIPsec, Situation: SituationIdentityOnly,
		Proposals: []Proposal{{Number: p.echo.number, Protocol: ProtoISAKMP, Transforms: []Transform{p.echo.t}}}}
	return sa.marshal()
}

func (p *phase1) sendSAr() {
	p.ex.send(encodeMessage(p.header(), append([]outPayload{{PayloadSA, p.responderSA()}}, p.vendorIDs()...)))
	p.setState(stateMMKER)
}

func (p *phase1) readKEi() error {
	pk, m, err := p.readPhase1(true)
	if err != nil {
		return err
	}
	if p.gxi, p.ni, err = nonceKE(m); err != nil {
		return err
	}
	p.processNATD(m, pk)
	return nil
}

func (p *phase1) sendKEr() error {
	if err := p.newDH(); err != nil {
		return err
	}
	p.gxr, p.nr = p.dh.Public, p.d.nonce()
	ps := []outPayload{{PayloadKE, p.gxr}, {PayloadNonce, p.nr}}
	ps = append(ps, p.certRequests()...)
	ps = append(ps, p.natdPayloads()...)
	if err := p.deriveKeys(); err != nil {
		return err
	}
	p.ex.send(encodeMessage(p.header(), ps))
	p.setState(stateMMAuthR)
	return nil
}

func (p *phase1) readIDi() (packet, *Message, error) {
	pk, m, err := p.readPhase1(true)
	if err != nil {
		// Garbage after decryption is what a wrong pre-shared key gives.
		return pk, nil, fmt.Errorf("%w: %v", errAuth, err)
	}
	ip := m.First(PayloadID)
	if ip == nil {
		return pk, nil, unexpectedError(PayloadID, m)
	}
	p.idiB = append([]byte(nil), ip.Body...)
	idp, err := ParseID(ip.Body)
	if err != nil {
		return pk, nil, fmt.Errorf("%w: %v", errAuth, err)
	}
	if p.remoteID, err = identityOf(idp); err != nil {
		return pk, nil, fmt.Errorf("%w: %v", errAuth, err)
	}
	d := p.d
	d.mu.Lock()
	if t := d.matchTunnel(p.sa.local.Addr(), p.sa.remote.Addr(), p.remoteID); t != nil {
		tc := *t
		p.tunnel = &tc
	}
	d.mu.Unlock()
	if err := p.verifyAuth(m); err != nil {
		return pk, nil, err
	}
	p.localID = localIdentity(p.tunnel, p.sa.local.Addr())
	return pk, m, nil
}

func (p *phase1) sendIDr() error {
	p.idrB = phase1ID(p.localID).marshal()
	auth, err := p.authPayloads()
	if err != nil {
		return err
	}
	p.ex.send(p.ex.sealed(ExchangeMain, append([]outPayload{{PayloadID, p.idrB}}, auth...)))
	return nil
}
