package v2

import (
	"fmt"
	"net/netip"

	"github.com/ismgw/ism/ike"
)

// The responder's IKE_AUTH (RFC 7296 §1.2, §2.15). The peer's identity
// picks the tunnels it may use (those from this end's address to its
// address, or to any address for a tunnel known only by its identity,
// with a matching remote identity) and this end's identity; its AUTH
// method picks how this end authenticates (authenticate.go): with its
// pre-shared key (by identity, with the seed's user@fqdn strip-and-retry,
// then by address), or with this end's certificate after the peer's chain
// and signature verified. A failed AUTH is answered with
// AUTHENTICATION_FAILED and the IKE SA is gone (§2.21.2). The child SA
// request then goes to the tunnel whose selectors its traffic selectors
// meet; its refusal leaves the IKE SA up.

// ikeAuthResponder handles the IKE_AUTH request.
func (sa *ikeSA) ikeAuthResponder(m *Message) {
	d := sa.d
	refuse := func(reason string) {
		d.count(func(c *ike.Counters) { c.AuthFailed++ })
		d.log.Info("IKE_AUTH refused", "remote", sa.remote, "reason", reason)
		sa.respond(IKEAuth, []Payload{notifyPayload(AuthenticationFailed, nil)})
		sa.fail(reason)
	}
	var idi ID
	var auth Auth
	okID, errID := m.decode(PayloadIDi, &idi)
	okA, errA := m.decode(PayloadAUTH, &auth)
	if !okID || errID != nil {
		refuse("IKE_AUTH without a valid IDi")
		return
	}
	if !okA || errA != nil {
		refuse("IKE_AUTH without AUTH (EAP is not offered)")
		return
	}
	peerID, err := idi.identity()
	if err != nil {
		refuse(err.Error())
		return
	}
	sa.hs.peerCertReq = append(sa.hs.peerCertReq, peerCertReq(m)...)
	d.mu.Lock()
	cands := d.tunnelsFor(sa.local.Addr(), sa.remote.Addr(), peerID)
	plan := authPlan{allowed: d.authMethods(sa.suite)}
	method := plan.methodClass(auth.Method)
	if method != 0 && len(cands) > 0 {
		plan, err = d.planAuth(sa, method, peerID, sa.remote.Addr())
	}
	d.mu.Unlock()
	defer plan.psk.Zero()
	switch {
	case len(cands) == 0:
		refuse("no tunnel for peer " + peerID.String())
		return
	case method == 0:
		refuse(fmt.Sprintf("peer %v authenticates with AUTH method %d, which no policy of the IKE SA allows (%v)", peerID, auth.Method, plan.allowed))
		return
	case err != nil:
		refuse(fmt.Sprintf("peer %v: %v", peerID, err))
		return
	}
	if err := sa.checkPeerAuth(m, auth, plan, peerID, idi.marshal()); err != nil {
		refuse(fmt.Sprintf("the AUTH of peer %v does not verify: %v", peerID, err))
		return
	}
	sa.remoteID = peerID
	sa.localID, sa.authMethod = cands[0].LocalIdentity(), plan.method
	idr := idPayload(sa.localID)
	idrBody := idr.marshal()
	certs, ours, err := sa.ownAuth(plan, idrBody, m.MessageID)
	if err != nil {
		refuse("this end cannot sign: " + err.Error())
		return
	}
	ps := append(append([]Payload{{Type: PayloadIDr, Body: idrBody}}, certs...), ours)
	sa.establish()
	if _, ok := m.Notify(InitialContact); ok {
		// §2.4: the peer has no other IKE SA with this end; whatever
		// this end still holds with it is stale.
		local, remote, id := sa.local.Addr(), sa.remote.Addr(), peerID
		sa.after(func() { d.initialContact(sa, local, remote, id) })
	}
	child, _, _ := sa.respondChild(m, cands, false, sa.ni, sa.nr, nil)
	sa.respond(IKEAuth, append(ps, child...))
}

// tunnelsFor returns the tunnels a peer at remote with identity id may
// use from local, those naming the identity first. Daemon.mu must be held.
func (d *Daemon) tunnelsFor(local, remote netip.Addr, id ike.Identity) []ike.Tunnel {
	var named, byAddr []ike.Tunnel
	for tu := range d.tunnelsAt(local, remote, id) {
		switch peerMatch(tu.cfg, remote, id) {
		case matchNamed:
			named = append(named, *tu.cfg)
		case matchAddress:
			byAddr = append(byAddr, *tu.cfg)
		}
	}
	sortTunnels(named)
	sortTunnels(byAddr)
	return append(named, byAddr...)
}

// How a tunnel matches a peer (tunnelsFor).
const (
	matchNone    = iota
	matchNamed   // it names the peer's identity
	matchAddress // it names no identity, and the peer's address
)

// peerMatch tells how a tunnel matches a peer at remote with identity id.
func peerMatch(t *ike.Tunnel, remote netip.Addr, id ike.Identity) int {
	switch {
	case t.Destination.IsValid() && t.Destination != remote && t.BackupDestination != remote:
	case !t.RemoteID.IsZero() && t.RemoteID.Equal(id):
		return matchNamed
	case t.RemoteID.IsZero() && (t.Destination == remote || t.BackupDestination == remote):
		return matchAddress
	}
	return matchNone
}

// initialContact deletes every other IKE SA with the peer, and their
// child SAs, without a word to it (§2.4).
func (d *Daemon) initialContact(keep *ikeSA, local, remote netip.Addr, id ike.Identity) {
	d.mu.Lock()
	var others []*ikeSA
	for sa := range d.idx.sas.Get(endpointPair{local, remote}) {
		if sa != keep {
			others = append(others, sa)
		}
	}
	d.mu.Unlock()
	for _, sa := range others {
		sa.lock()
		// The addresses under the SA's lock: a NAT-T float changes them.
		// Only this end's address the peer contacted: an IKE SA with the
		// same peer at another local address (another identity of this
		// end) is no business of this one's.
		if sa.state == stateEstablished && sa.remote.Addr() == remote && sa.local.Addr() == local &&
			(sa.remoteID.IsZero() || sa.remoteID.Equal(id)) {
			d.log.Info("INITIAL_CONTACT: deleting a stale IKE SA", "remote", remote, "sa", sa.String())
			sa.destroy("the peer restarted (INITIAL_CONTACT)")
		}
		sa.unlock()
	}
}
