package v2

import (
	"net/netip"

	"github.com/ismgw/ism/ike"
)

// The responder's IKE_AUTH (RFC 7296 §1.2, §2.15). The peer's identity
// picks the tunnels it may use (those from this end's address to its
// address, or to any address for a tunnel known only by its identity,
// with a matching remote identity), its pre-shared key (by identity, with
// the seed's user@fqdn strip-and-retry, then by address), and this end's
// identity. A failed AUTH is answered with AUTHENTICATION_FAILED and the
// IKE SA is gone (§2.21.2). The child SA request then goes to the tunnel
// whose selectors its traffic selectors meet; its refusal leaves the IKE
// SA up.

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
	d.mu.Lock()
	cands := d.tunnelsFor(sa.local.Addr(), sa.remote.Addr(), peerID)
	psk := d.pskFor(peerID, sa.remote.Addr())
	d.mu.Unlock()
	switch {
	case len(cands) == 0:
		refuse("no tunnel for peer " + peerID.String())
		return
	case psk == nil:
		refuse("no pre-shared key for peer " + peerID.String())
		return
	case !verifyPSK(sa.suite.prf, psk, auth, sa.initReq, sa.nr, sa.keys.pi, idi.marshal()):
		refuse("the AUTH of peer " + peerID.String() + " does not verify")
		return
	}
	sa.remoteID = peerID
	sa.localID = cands[0].LocalIdentity()
	idr := idPayload(sa.localID)
	idrBody := idr.marshal()
	ours := Auth{Method: AuthSharedKey, Data: pskAuth(sa.suite.prf, psk, sa.initResp, sa.ni, sa.keys.pr, idrBody)}
	ps := []Payload{{Type: PayloadIDr, Body: idrBody}, {Type: PayloadAUTH, Body: ours.marshal()}}
	sa.establish()
	if _, ok := m.Notify(InitialContact); ok {
		// §2.4: the peer has no other IKE SA with this end; whatever
		// this end still holds with it is stale.
		remote, id := sa.remote.Addr(), peerID
		sa.after(func() { d.initialContact(sa, remote, id) })
	}
	child, _ := sa.respondChild(m, cands, false, sa.ni, sa.nr, nil)
	sa.respond(IKEAuth, append(ps, child...))
}

// tunnelsFor returns the tunnels a peer at remote with identity id may
// use from local, those naming the identity first. Daemon.mu must be held.
func (d *Daemon) tunnelsFor(local, remote netip.Addr, id ike.Identity) []ike.Tunnel {
	var named, byAddr []ike.Tunnel
	for _, tu := range d.tunnels {
		t := tu.cfg
		if t.Source != local {
			continue
		}
		switch {
		case t.Destination.IsValid() && t.Destination != remote && t.BackupDestination != remote:
		case !t.RemoteID.IsZero() && t.RemoteID.Equal(id):
			named = append(named, t)
		case t.RemoteID.IsZero() && (t.Destination == remote || t.BackupDestination == remote):
			byAddr = append(byAddr, t)
		}
	}
	sortTunnels(named)
	sortTunnels(byAddr)
	return append(named, byAddr...)
}

// initialContact deletes every other IKE SA with the peer, and their
// child SAs, without a word to it (§2.4).
func (d *Daemon) initialContact(keep *ikeSA, remote netip.Addr, id ike.Identity) {
	d.mu.Lock()
	var stale []*ikeSA
	for _, sa := range d.sas {
		if sa != keep && sa.remote.Addr() == remote {
			stale = append(stale, sa)
		}
	}
	d.mu.Unlock()
	for _, sa := range stale {
		sa.lock()
		if sa.state == stateEstablished && (sa.remoteID.IsZero() || sa.remoteID.Equal(id)) {
			d.log.Info("INITIAL_CONTACT: deleting a stale IKE SA", "remote", remote, "sa", sa.String())
			sa.destroy("the peer restarted (INITIAL_CONTACT)")
		}
		sa.unlock()
	}
}
