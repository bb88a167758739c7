package v2

import (
	"github.com/ismgw/ism/ike"
)

// INFORMATIONAL exchanges (RFC 7296 §1.4): Deletes of child SAs and of
// the IKE SA, and the empty request that is IKEv2's liveness check (§2.4).
//
//	HDR, SK {[N,] [D,] ...}  -->
//	                   <--  HDR, SK {[N,] [D,] ...}
//
// A Delete of child SAs names the SPIs its sender receives on, which are
// this end's outbound SPIs; the answer names this end's inbound SPIs of
// the same children (§1.4.1). A Delete of the IKE SA is answered empty,
// and the IKE SA and its children are gone.

// informationalResponder handles an INFORMATIONAL request.
func (sa *ikeSA) informationalResponder(m *Message) {
	d := sa.d
	if _, ok := m.Notify(AuthenticationFailed); ok {
		// The initiator refused this end's IKE_AUTH response (§2.21.2).
		d.count(func(c *ike.Counters) { c.AuthFailed++ })
		sa.respond(Informational, nil)
		d.log.Info("the peer refused this end's authentication", "remote", sa.remote)
		sa.destroy("the peer refused this end's authentication (AUTHENTICATION_FAILED)")
		return
	}
	var answer []Payload
	deleteIKE := false
	var gone []*childSA
	for _, p := range m.All(PayloadDelete) {
		var del Delete
		if err := del.unmarshal(p.Body); err != nil {
			sa.respond(Informational, []Payload{notifyPayload(InvalidSyntax, nil)})
			return
		}
		d.count(func(c *ike.Counters) { c.DeletesReceived++ })
		if del.Protocol == ProtoIKE {
			deleteIKE = true
			continue
		}
		ours := Delete{Protocol: del.Protocol}
		for _, spi := range del.SPIs {
			if c := sa.childByOut(del.Protocol, spi); c != nil {
				ours.SPIs = append(ours.SPIs, c.in.SPI)
				gone = append(gone, c)
			}
		}
		if len(ours.SPIs) > 0 {
			answer = append(answer, Payload{Type: PayloadDelete, Body: ours.marshal()})
		}
	}
	if n := len(m.All(PayloadNotify)); n > 0 {
		d.count(func(c *ike.Counters) { c.NotifiesReceived += uint64(n) })
	}
	if len(m.Payloads) == 0 {
		d.count(func(c *ike.Counters) { c.DPDAnswered++ })
	}
	if deleteIKE {
		sa.respond(Informational, nil)
		if rk := sa.rk; rk != nil && rk.peer != nil {
			// §2.8.2: the peer finished its rekey without noticing this
			// end's; its new SA takes the child SAs.
			sa.handTo(rk.peer)
		}
		d.log.Info("IKE SA deleted by the peer", "remote", sa.remote, "sa", sa.String())
		sa.destroy("deleted by the peer")
		return
	}
	sa.respond(Informational, answer)
	for _, c := range gone {
		sa.removeChild(c, "deleted by the peer")
	}
}

// sendDeleteIKE sends a Delete of the IKE SA without waiting for the
// answer (the daemon closes, or the IKE SA expires and goes at once). The
// SA's mutex must be held.
func (sa *ikeSA) sendDeleteIKE() {
	if !sa.keyed() {
		return
	}
	h := sa.header(Informational, sa.win.nextID, false)
	sa.win.nextID++
	out := sa.sealer()
	b, err := out.seal(h, []Payload{{Type: PayloadDelete, Body: (&Delete{Protocol: ProtoIKE}).marshal()}}, sa.d.rand)
	if err == nil {
		sa.send(b)
	}
}

// expire ends the IKE SA at the end of its lifetime: a Delete to the
// peer, then the SA and its children are gone; its tunnels negotiate
// again. A rekey (§2.8) normally replaced it before: then only the
// replaced SA, which the peer did not delete, goes.
func (sa *ikeSA) expire() {
	sa.lock()
	defer sa.unlock()
	if sa.state == stateRekeyed {
		sa.sendDeleteIKE()
		sa.destroy("the rekeyed IKE SA expired")
		return
	}
	if sa.state != stateEstablished {
		return
	}
	d := sa.d
	var again []string
	seen := map[string]bool{}
	for _, c := range sa.children {
		if !seen[c.tunnel] && sa.initiator {
			seen[c.tunnel] = true
			again = append(again, c.tunnel)
		}
	}
	sa.sendDeleteIKE()
	sa.destroy("IKE SA lifetime expired")
	for _, name := range again {
		sa.after(func() { d.Acquire(name) })
	}
}

// peerGone ends an IKE SA whose peer stopped answering (§2.4: "the IKE SA
// ... and all Child SAs ... are deleted"). The SA's mutex must be held.
func (sa *ikeSA) peerGone(reason string) {
	if sa.state == stateDead {
		return
	}
	d := sa.d
	if sa.dpd != nil {
		// Dead peer detection was watching: tell the line card, before
		// the tunnels go down, as ike/v1 does.
		now := d.clk.Now()
		remote := sa.remote.Addr()
		names := sa.tunnelNames()
		d.count(func(c *ike.Counters) { c.DPDPeersDead++ })
		sa.after(func() {
			if d.lis != nil {
				for _, n := range names {
					d.lis.PeerDead(n, remote, now)
				}
			}
		})
	}
	d.log.Warn("peer gone", "remote", sa.remote, "reason", reason)
	dpd := sa.dpd != nil
	sa.destroy(reason)
	if dpd {
		sa.deadPeerFailover(reason)
	}
}

// tunnelNames returns the tunnels with child SAs on the IKE SA.
func (sa *ikeSA) tunnelNames() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range sa.children {
		if !seen[c.tunnel] {
			seen[c.tunnel] = true
			out = append(out, c.tunnel)
		}
	}
	return out
}
