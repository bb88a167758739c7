package v2

import (
	"github.com/ismgw/ism/ike"
)

// Simultaneous rekeys of a child SA (RFC 7296 §2.8.1) and the refusals of
// §2.25. When both ends rekey the same child at once, each answers the
// other's request while its own is out, so two new child SAs come about;
// "the SA created with the lowest of the four nonces used in the two
// exchanges SHOULD be closed by the endpoint that created it", and "the
// node that initiated the surviving rekeyed SA should delete the replaced
// SA". This end learns the outcome when its own answer comes: if its new
// child lost, it never installs it and deletes the peer's half with a
// Delete of its SPI; if it stands, it is installed and the old child
// retired as in any rekey, and the peer deletes its own new child. An end
// that completed its rekey before the peer's request came answers that
// request with TEMPORARY_FAILURE (§2.25.1: a child it is closing).

// childCollision is the peer's rekey of a child this end was rekeying.
type childCollision struct {
	peer   *childSA // the new child of the peer's rekey, which this end answered
	ni, nr []byte   // the nonces of the peer's exchange (a child keeps none)
}

// collisionLost decides a collision once this end's rekey of old is
// answered, with the nonces ni and nr of its exchange: it reports whether
// this end's new child lost, and deletes it then. The SA's mutex must be
// held.
func (sa *ikeSA) collisionLost(old *childSA, ni, nr []byte, ch childChoice, o childOffer) bool {
	d := sa.d
	col := old.collision()
	old.rekeying = false
	if !lowestIn(ni, nr, col.ni, col.nr) {
		d.log.Info("child SA rekey collision: this end's new child SA stands", "tunnel", old.tunnel)
		return false
	}
	d.log.Info("child SA rekey collision: this end's new child SA has the lowest nonce", "tunnel", old.tunnel,
		"kept", hexSPI(col.peer.in.SPI))
	sa.sendDeleteSPI(ch, o)
	return true
}

// childRefused handles the refusals of §2.25 of a CREATE_CHILD_SA this end
// started for tunnel t (rekeying old, when set); it reports whether it
// did. The SA's mutex must be held.
func (sa *ikeSA) childRefused(t *ike.Tunnel, old *childSA, n NotifyType) bool {
	d := sa.d
	switch n {
	case TemporaryFailure:
		// "it MUST NOT immediately retry the operation; it MUST wait"
		d.count(func(c *ike.Counters) { c.TemporaryFailures++ })
		if old == nil {
			local, remote := sa.local.Addr(), sa.remote.Addr()
			d.clk.AfterFunc(d.retryDelay(), func() { d.negotiate(t.Name, local, remote) })
			return true
		}
		old.rekeying = false
		if old.dead || old.collision() != nil {
			return true // the peer's rekey of it stands
		}
		d.mu.Lock()
		old.inRekey = false
		d.mu.Unlock()
		old.rekeyState().retry = d.clk.AfterFunc(d.retryDelay(), func() {
			owner := d.lockOwner(old)
			defer owner.unlock()
			if old.rk != nil {
				old.rk.retry = nil
				old.tidy()
			}
			owner.rekeyChild(old)
		})
		return true
	case ChildSANotFound:
		if old == nil {
			return false
		}
		// "SHOULD silently delete the Child SA (if it still exists) and
		// send a request to create a new Child SA from scratch (if the
		// Child SA does not yet exist)".
		old.rekeying = false
		sa.removeChild(old, "the peer has no such child SA (CHILD_SA_NOT_FOUND)")
		d.mu.Lock()
		tu := d.tunnels[t.Name]
		again := tu != nil && len(tu.children) == 0
		d.mu.Unlock()
		if again {
			sa.createChild(t.Name, nil)
		}
		return true
	}
	return false
}
