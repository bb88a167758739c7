package v2

import "time"

// How a replaced IKE SA goes (RFC 7296 §2.8): the end of this end's
// rekey, its Delete, or the wait for the peer's. What it had queued moved
// to its successor with its child SAs (handTo); what it still has out
// when it goes is the rekey's Delete, or a liveness check, which the
// successor's own dead peer detection replaces: a child SA exchange never
// is, since the peer's rekey is refused while one is out (§2.25.2).

// rekeyedWait is how long a replaced IKE SA waits for the peer's Delete
// (§2.8: the rekey's initiator deletes it; §2.8.2: a collision's loser is
// deleted by its creator). A peer that aborted its side of a collision
// never does (charon: "peer did not notice IKE_SA rekey collision, abort
// active rekeying"); then this end deletes it.
const rekeyedWait = 20 * time.Second

// awaitDelete arms the wait for the peer's Delete of a replaced SA. The
// SA's mutex must be held.
func (sa *ikeSA) awaitDelete() {
	// The end of its lifetime may come first (expire deletes it then).
	if left := sa.createdAt().Add(sa.lifetime()).Sub(sa.d.clk.Now()); left < rekeyedWait {
		sa.armLife(max(0, left), sa.expire)
		return
	}
	sa.armLife(rekeyedWait, func() {
		sa.lock()
		defer sa.unlock()
		if sa.state == stateRekeyed {
			sa.sendDeleteIKE()
			sa.destroy("the peer did not delete the replaced IKE SA")
		}
	})
}

// requestDeleteIKE deletes the IKE SA with an INFORMATIONAL Delete and
// removes it when the peer answers or does not. The SA's mutex must be
// held.
func (sa *ikeSA) requestDeleteIKE(reason string) {
	done := func(sa *ikeSA) { sa.destroy(reason) }
	sa.request(&request{exchange: Informational, kind: reqIKEDelete,
		build: func(sa *ikeSA) ([]Payload, error) {
			return []Payload{{Type: PayloadDelete, Body: (&Delete{Protocol: ProtoIKE}).marshal()}}, nil
		},
		onResponse: func(sa *ikeSA, m *Message) { done(sa) },
		onTimeout:  done,
	})
}

// rekeyCompleted ends this end's rekey with its new IKE SA n (or the
// error that kept it from being made): the collision rules of §2.8.2,
// then the old SA's child SAs move to the new one and it is deleted.
func (sa *ikeSA) rekeyCompleted(n *ikeSA, err error, rk *ikeRekey) {
	d := sa.d
	if err != nil {
		d.log.Warn("IKE SA rekey failed", "sa", sa.String(), "err", err)
		if rk.peer != nil {
			sa.handTo(rk.peer)
		}
		return
	}
	if p := rk.peer; p != nil {
		if lowestIn(rk.ni, rk.nr, rk.peerNi, rk.peerNr) {
			// This end's new SA lost: it deletes it, its creator; the
			// peer deletes the old one.
			d.log.Info("IKE SA rekey collision: this end's new SA has the lowest nonce", "new", n.String(), "kept", p.String())
			n.lock()
			n.setState(stateDeleting)
			n.requestDeleteIKE("the IKE SA rekey collision")
			n.unlockNested(sa)
			sa.handTo(p)
			return
		}
		d.log.Info("IKE SA rekey collision: this end's new SA stands", "new", n.String(), "dropped", p.String())
		p.lock()
		p.setState(stateRekeyed) // the peer deletes it
		p.setUnsettled(false)
		p.awaitDelete()
		p.unlockNested(sa)
	}
	sa.handTo(n)
	sa.requestDeleteIKE("rekeyed")
}
