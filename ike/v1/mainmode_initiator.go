package v1

import (
	"fmt"
)

// mainModeInitiator runs main mode as initiator (RFC 2409 §5, RFC 3947):
//
//	HDR, SA, VID                     -->
//	                                 <--  HDR, SA, VID
//	HDR, KE, Ni, [CR], NAT-D, NAT-D  -->
//	                                 <--  HDR, KE, Nr, [CR], NAT-D, NAT-D
//	HDR*, IDii, [CERT,] HASH_I|SIG_I -->  (on 4500 behind a NAT)
//	                                 <--  HDR*, IDir, [CERT,] HASH_R|SIG_R
func (d *Daemon) mainModeInitiator(p *phase1) error {
	if err := p.sendSA(); err != nil {
		return err
	}
	if err := p.readSA(); err != nil {
		return err
	}
	if err := p.sendKE(); err != nil {
		return err
	}
	if err := p.readKE(); err != nil {
		return err
	}
	p.float()
	if err := p.sendIDi(); err != nil {
		return err
	}
	return p.readIDr()
}

func (p *phase1) sendSA() error {
	saB, err := p.initiatorSA()
	if err != nil {
		return err
	}
	p.saiB = saB
	p.ex.send(encodeMessage(p.header(), append([]outPayload{{PayloadSA, saB}}, p.vendorIDs()...)))
	return nil
}

func (p *phase1) readSA() error {
	_, m, err := p.readPhase1(true)
	if err != nil {
		return err
	}
	sp := m.First(PayloadSA)
	if sp == nil {
		return unexpectedError(PayloadSA, m)
	}
	pol, err := p.acceptResponderSA(sp.Body)
	if err != nil {
		return fmt.Errorf("%w: %v", errNoProposal, err)
	}
	p.policy = pol
	p.sawVendorIDs(m)
	p.setState(stateMMKEI)
	return nil
}

func (p *phase1) sendKE() error {
	if err := p.newDH(); err != nil {
		return err
	}
	p.gxi, p.ni = p.dh.Public, p.d.nonce()
	ps := []outPayload{{PayloadKE, p.gxi}, {PayloadNonce, p.ni}}
	ps = append(ps, p.certRequests()...)
	ps = append(ps, p.natdPayloads()...)
	p.ex.send(encodeMessage(p.header(), ps))
	return nil
}

func (p *phase1) readKE() error {
	pk, m, err := p.readPhase1(true)
	if err != nil {
		return err
	}
	if p.gxr, p.nr, err = nonceKE(m); err != nil {
		return err
	}
	p.processNATD(m, pk)
	if err := p.deriveKeys(); err != nil {
		return err
	}
	p.setState(stateMMAuthI)
	return nil
}

func (p *phase1) sendIDi() error {
	id := phase1ID(p.localID)
	p.idiB = id.marshal()
	auth, err := p.authPayloads()
	if err != nil {
		return err
	}
	ps := append([]outPayload{{PayloadID, p.idiB}}, auth...)
	ps = append(ps, p.initialContactPayload()...)
	p.ex.send(p.ex.sealed(ExchangeMain, ps))
	return nil
}

func (p *phase1) readIDr() error {
	pk, m, err := p.readPhase1(true)
	if err != nil {
		return fmt.Errorf("%w: %v", errAuth, err)
	}
	if err := p.checkIDr(m); err != nil {
		return err
	}
	if err := p.verifyAuth(m); err != nil {
		return err
	}
	p.adoptEndpoints(pk)
	p.ex.done(nil)
	return nil
}

// checkIDr reads the responder's identity and checks it is the one the
// tunnel expects (any identity when the tunnel names none).
func (p *phase1) checkIDr(m *Message) error {
	ip := m.First(PayloadID)
	if ip == nil {
		return unexpectedError(PayloadID, m)
	}
	p.idrB = append([]byte(nil), ip.Body...)
	idp, err := ParseID(ip.Body)
	if err != nil {
		return err
	}
	got, err := identityOf(idp)
	if err != nil {
		return err
	}
	if p.tunnel != nil && !p.tunnel.RemoteID.IsZero() && !p.tunnel.RemoteID.Equal(got) {
		return fmt.Errorf("%w: peer is %v, the tunnel expects %v", errAuth, got, p.tunnel.RemoteID)
	}
	p.remoteID = got
	return nil
}

func (p *phase1) setState(s saState) {
	p.d.mu.Lock()
	p.sa.state = s
	p.d.mu.Unlock()
}
