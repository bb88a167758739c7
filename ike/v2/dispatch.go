package v2

import (
	"errors"
	"net/netip"

	"github.com/ismgw/ism/ike"
)

// maxHalfOpen bounds the IKE SAs peers may have between IKE_SA_INIT and
// IKE_AUTH at once; cookies (§2.6, cookie.go) keep it from filling with
// forged addresses.
const maxHalfOpen = 20000

// Receive handles one IKE datagram: it parses the header and payload
// chain, finds the IKE SA by this end's SPI (§2.6: the initiator's SPI
// when the peer is the responder, the responder's otherwise) and hands the
// message to it, or starts a responder IKE SA for a new IKE_SA_INIT. Bad
// input is counted and dropped (§2.21.1: unauthenticated errors are never
// answered, except in IKE_SA_INIT).
func (d *Daemon) Receive(local, remote netip.AddrPort, msg []byte) {
	d.count(func(c *ike.Counters) { c.Received++ })
	if len(msg) == 1 && msg[0] == 0xff {
		return // NAT-T keepalive (RFC 3948 §2.3)
	}
	if len(msg) > MaxMessageSize {
		d.count(func(c *ike.Counters) { c.Malformed++ })
		return
	}
	msg = append([]byte(nil), msg...)
	m, err := ParseMessage(msg)
	if err != nil {
		d.count(func(c *ike.Counters) { c.Malformed++ })
		d.log.Debug("malformed message", "remote", remote, "err", err)
		return
	}
	if m.Exchange == IKESAInit && !m.IsResponse() {
		if m.SPIr != 0 || m.MessageID != 0 || m.Flags&FlagInitiator == 0 {
			d.count(func(c *ike.Counters) { c.Dropped++ })
			return
		}
		d.ikeSAInitResponder(local, remote, m)
		return
	}
	spi := m.SPIi
	if m.Flags&FlagInitiator != 0 {
		spi = m.SPIr
	}
	d.mu.Lock()
	sa := d.sas[spi]
	closed := d.closed
	d.mu.Unlock()
	if sa == nil || closed {
		d.count(func(c *ike.Counters) { c.UnknownSA++ })
		d.invalidIKESPI(local, remote, m)
		return
	}
	sa.lock()
	defer sa.unlock()
	sa.receive(local, remote, m)
}

// receive handles a message for the SA. Its mutex is held.
func (sa *ikeSA) receive(local, remote netip.AddrPort, m *Message) {
	d := sa.d
	drop := func(f func(c *ike.Counters)) { d.count(f) }
	// The Initiator flag names the original initiator (§3.1).
	if (m.Flags&FlagInitiator != 0) == sa.initiator || sa.state == stateDead {
		drop(func(c *ike.Counters) { c.Dropped++ })
		return
	}
	if m.Exchange == IKESAInit {
		// The response to this end's IKE_SA_INIT, in the clear.
		if sa.state != stateInitSent || !sa.response(m) {
			drop(func(c *ike.Counters) { c.OutOfWindow++ })
		}
		return
	}
	if !sa.keyed() {
		drop(func(c *ike.Counters) { c.Dropped++ })
		return
	}
	// The request answered last, again, opens with the keys it came
	// under, which IKE_INTERMEDIATE changes (RFC 9370 §2.2.2), and the
	// response cache answers it below.
	in := sa.opener(!m.IsResponse() && sa.win.hasResp && m.MessageID+1 == sa.win.expect)
	if isFragment(m) {
		var ok bool
		if m, ok = sa.receiveFragment(m); !ok {
			return
		}
	} else if err := in.openMessage(m.raw, m); err != nil {
		if errors.Is(err, errIntegrity) {
			drop(func(c *ike.Counters) { c.Dropped++ })
		} else {
			drop(func(c *ike.Counters) { c.Malformed++ })
		}
		d.log.Debug("message does not open", "exchange", m.Exchange.String(), "msgid", m.MessageID, "err", err)
		return
	}
	if m.IsResponse() {
		if sa.win.out == nil || m.MessageID != sa.win.out.msgID {
			drop(func(c *ike.Counters) { c.OutOfWindow++ })
			return
		}
		sa.heard()
		sa.follow(remote)
		sa.response(m)
		return
	}
	switch {
	case m.MessageID == sa.win.expect:
	case m.MessageID > sa.win.expect && m.MessageID-sa.win.expect <= sa.resync:
		sa.win.expect = m.MessageID // an imported SA: the peer's requests moved on (import.go)
	case m.MessageID+1 == sa.win.expect && sa.win.hasResp:
		// A retransmission: the same response again, to where it came
		// from (§2.1, §2.11).
		drop(func(c *ike.Counters) { c.Duplicates++ })
		for _, resp := range sa.win.lastResp {
			sa.after(func() { _ = d.tr.Send(local, remote, resp) })
		}
		return
	default:
		drop(func(c *ike.Counters) { c.OutOfWindow++ })
		return
	}
	sa.heard()
	sa.resync = 0
	sa.dropOldKeys() // no retransmission of an earlier request can come now
	if local.Port() == 4500 && !sa.natt {
		// The initiator floated (§2.23); answer on 4500 from now on.
		sa.natt = true
		sa.setEndpoints(local, remote)
	}
	sa.follow(remote)
	switch {
	case m.Exchange == IKEIntermediate && sa.state == stateInitDone && !sa.initiator && sa.intDone() < len(sa.suite.addke):
		sa.intermediateResponder(m)
	case m.Exchange == IKEAuth && sa.state == stateInitDone && !sa.initiator && sa.intDone() == len(sa.suite.addke):
		// RFC 9242 §3.2: every IKE_INTERMEDIATE exchange comes first.
		sa.ikeAuthResponder(m)
	case m.Exchange == CreateChildSA && sa.state == stateEstablished:
		sa.createChildResponder(m)
	case m.Exchange == IKEFollowupKE && sa.state == stateEstablished:
		sa.followupResponder(m)
	case m.Exchange == CreateChildSA && sa.state == stateRekeyed:
		// §2.8.2, §2.25: an SA this end is closing.
		sa.temporaryFailure()
	case m.Exchange == Informational && (sa.state == stateEstablished || sa.state == stateDeleting || sa.state == stateRekeyed):
		sa.informationalResponder(m)
	default:
		// §2.21.2: a request this end cannot take in its state; it is
		// answered with INVALID_SYNTAX only when authenticated, which it
		// is here.
		drop(func(c *ike.Counters) { c.Dropped++ })
		sa.respond(m.Exchange, []Payload{notifyPayload(InvalidSyntax, nil)})
	}
}

// notifyPayload returns a Notify payload without an SPI.
func notifyPayload(t NotifyType, data []byte) Payload {
	return Payload{Type: PayloadNotify, Body: (&Notify{Type: t, Data: data}).marshal()}
}

// peerError returns the first error notify of a response, if any.
func peerError(m *Message) *NotifyError {
	ns, _ := m.Notifies()
	for _, n := range ns {
		if n.Type.IsError() {
			return &NotifyError{Type: n.Type, Data: n.Data}
		}
	}
	return nil
}
