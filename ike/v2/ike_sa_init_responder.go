package v2

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/ismgw/ism/ike"
)

// The responder's IKE_SA_INIT (RFC 7296 §1.2). It keeps no state for a
// request it refuses: NO_PROPOSAL_CHOSEN, INVALID_KE_PAYLOAD naming the
// group of the proposal it chose (§1.3: "the responder MUST reject ...
// with INVALID_KE_PAYLOAD indicating the selected group") and
// INVALID_SYNTAX go back in the clear with the initiator's SPI (§2.21.1).
// A retransmitted request gets the same response again.

// halfOpenTimeout is how long a responder IKE SA waits for IKE_AUTH.
const halfOpenTimeout = 30 * time.Second

// ikeSAInitResponder handles an IKE_SA_INIT request.
func (d *Daemon) ikeSAInitResponder(local, remote netip.AddrPort, m *Message) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	if sa := d.halfOpen[respKey{m.SPIi, remote.Addr()}]; sa != nil {
		d.mu.Unlock()
		sa.lock()
		defer sa.unlock()
		if sa.state != stateDead && sa.hs != nil && sa.win.expect == 1 && sa.win.hasResp && sameBytes(sa.hs.initReq, m.raw) {
			d.count(func(c *ike.Counters) { c.Duplicates++ })
			sa.send(sa.hs.initResp)
			return
		}
		d.count(func(c *ike.Counters) { c.Dropped++ })
		return
	}
	if len(d.halfOpen) >= maxHalfOpen {
		d.counters.Dropped++
		d.mu.Unlock()
		return
	}
	suites := d.cfg.suites
	forceEncap := d.wantsEncap(local.Addr(), remote.Addr())
	needCookie := d.cookieRequiredLocked()
	d.mu.Unlock()

	var saP SA
	var ke KE
	okSA, errSA := m.decode(PayloadSA, &saP)
	okKE, errKE := m.decode(PayloadKE, &ke)
	np, okN := m.Get(PayloadNonce)
	var ni []byte
	var errN error
	if okN {
		ni, errN = parseNonce(np.Body)
	}
	if !okSA || !okKE || !okN || errSA != nil || errKE != nil || errN != nil {
		d.count(func(c *ike.Counters) { c.Malformed++ })
		d.refuseInit(local, remote, m, InvalidSyntax, nil)
		return
	}
	// §2.6: under load, a request without a valid cookie gets one,
	// before any state or Diffie-Hellman work; the cookie check comes
	// before the proposal's and the group's (§2.6.1).
	cookie := needCookie && d.checkCookie(m, remote.Addr(), ni)
	if needCookie && !cookie {
		if _, ok := m.Notify(Cookie); ok {
			d.count(func(c *ike.Counters) { c.CookiesRefused++ })
		}
		d.sendCookie(local, remote, m, ni)
		return
	}
	_, intermediate := m.Notify(IntermediateExchangeSupported)
	su, prop, addke, ok := chooseIKE(suites, &saP, 0, intermediate)
	if !ok {
		d.count(func(c *ike.Counters) { c.NoProposalChosen++ })
		d.refuseInit(local, remote, m, NoProposalChosen, nil)
		return
	}
	if int(ke.Group) != su.group {
		d.count(func(c *ike.Counters) { c.InvalidKE++ })
		d.refuseInit(local, remote, m, InvalidKEPayload, binary.BigEndian.AppendUint16(nil, uint16(su.group)))
		return
	}
	g, _ := ike.LookupGroup(su.group)
	kex, err := g.GenerateKey(d.rand)
	if err != nil {
		return
	}
	defer kex.Zero()
	shared, err := kex.Shared(ke.Data)
	if err != nil {
		d.count(func(c *ike.Counters) { c.Malformed++ })
		d.refuseInit(local, remote, m, InvalidSyntax, nil)
		return
	}

	sa := d.newIKESA(false, local, remote, m.SPIi)
	sa.lock()
	defer sa.unlock()
	sa.forceEncap = forceEncap
	if cookie {
		sa.cookies = 1
	}
	sa.suite, sa.hs.ni, sa.hs.initReq = d.suites.get(su), ni, m.raw
	sa.hs.nr = make([]byte, nonceLen)
	d.random(sa.hs.nr)
	if err := sa.deriveKeys(shared); err != nil {
		sa.fail(err.Error())
		return
	}
	localNAT, remoteNAT, found := detectNAT(m, local, remote)
	sa.localNAT, sa.remoteNAT = localNAT, remoteNAT
	sa.readExtensions(m)
	ps := []Payload{
		{Type: PayloadSA, Body: chosenIKE(su, prop.Number, addke).marshal()},
		{Type: PayloadKE, Body: (&KE{Group: uint16(su.group), Data: kex.Public}).marshal()},
		{Type: PayloadNonce, Body: sa.hs.nr},
	}
	if found {
		ps = append(ps, natNotifies(sa.spiI, sa.spiR, local, remote, forceEncap)...)
	}
	ps = append(ps, d.initExtensions(sa, false)...)
	sa.respond(IKESAInit, ps)
	sa.hs.initResp = sa.win.lastResp[0]
	sa.armLife(halfOpenTimeout, func() {
		sa.lock()
		defer sa.unlock()
		if sa.state == stateInitDone {
			sa.fail("IKE_AUTH did not come")
		}
	})
}

// refuseInit answers an IKE_SA_INIT request with an error notify and keeps
// no state (§2.21.1).
func (d *Daemon) refuseInit(local, remote netip.AddrPort, m *Message, t NotifyType, data []byte) {
	h := Header{SPIi: m.SPIi, Version: Version, Exchange: IKESAInit, Flags: FlagResponse}
	resp := (&Message{Header: h, Payloads: []Payload{notifyPayload(t, data)}}).Marshal()
	d.log.Debug("IKE_SA_INIT refused", "remote", remote, "notify", t.String())
	_ = d.tr.Send(local, remote, resp)
}

func sameBytes(a, b []byte) bool { return string(a) == string(b) }
