package v1

import (
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// A child SA's life: installed when its quick mode ends, rekeyed before it
// expires (one quick mode per child, for its own selectors), replaced
// make before break, deleted by either end or at its hard lifetime.

// Expire handles a lifetime crossing the data path reports: a soft one
// starts a rekey, a hard one deletes the SA pair.
func (d *Daemon) Expire(id ipsec.SAID, hard bool) {
	d.mu.Lock()
	c, old := d.childLocked(id), d.pendingIn[id]
	d.mu.Unlock()
	if c == nil && old != nil {
		// The inbound SA of a rekey waiting to take over: the peer
		// sends on it, so it has the pair; the pair takes over now, and
		// its crossing is handled as any other's.
		d.takeOver(old)
		d.mu.Lock()
		c = d.childLocked(id)
		d.mu.Unlock()
	}
	if c == nil {
		return
	}
	if hard {
		// A rekey waiting to take over does so now.
		if !d.takeOver(c) {
			d.removeChild(c, "lifetime expired")
		}
		return
	}
	d.rekeyChild(c)
}

// installOutbound installs the outbound SA of a child whose inbound SA is
// in, and makes the child the tunnel's newest. plan is this end's (nil
// when the peer started the quick mode); when it is a rekey, the child it
// replaces is deleted afterwards: make before break.
func (d *Daemon) installOutbound(c *childSA, out ike.UserSA, plan *qmPlan) error {
	var replaces *childSA
	if plan != nil {
		replaces = plan.replaces
	}
	if err := d.inst.AddSA(c.out, out); err != nil {
		_ = d.inst.DeleteSA(c.in)
		return err
	}
	d.mu.Lock()
	tu := c.tu
	wasUp := tu.state == stateUp
	prior := tu.newest(c.local(), c.remote()) // the child a peer's rekey replaces
	c.created = d.now()
	d.putChildLocked(c)
	tu.children = append(tu.children, c)
	tu.state = stateUp
	tu.lastError = ""
	tu.qm = ""
	recovered := d.negotiatedLocked(tu, plan, c.local(), c.remote())
	if replaces != nil || prior != nil {
		tu.rekeys++
		d.counters.Rekeys++
	}
	d.counters.QuickModesCompleted++
	foDuration := d.failoverDoneLocked(tu, c)
	if c.ikesa != nil {
		d.heardLocked(c.ikesa)
	}
	d.dpdArmLocked(peerKey{c.in.Dst, c.out.Dst}, tu)
	if c.lifetime.Time > 0 {
		soft := d.jitter(c.lifetime.Time)
		d.armLifeLocked(&c.life, soft, c.lifetime.Time, func(soft bool) {
			if soft {
				d.rekeyChild(c)
			} else {
				d.Expire(c.in, true)
			}
		})
	}
	peer := tu.peer
	name := tu.cfg.Name
	d.mu.Unlock()
	d.log.Info("SA installed", "tunnel", name, "spi_in", hexSPI(c.in.SPI), "spi_out", hexSPI(c.out.SPI), "transform", c.transform.String(),
		"local", c.local().String(), "remote", c.remote().String())
	if recovered {
		d.log.Info("negotiation succeeded after failures", "tunnel", name, "local", c.local().String(), "remote", c.remote().String())
	}
	if foDuration > 0 {
		d.log.Info("failover complete", "tunnel", name, "to", c.out.Dst, "duration", foDuration)
	}
	if !wasUp && d.lis != nil {
		d.lis.TunnelUp(name, peer)
	}
	if replaces != nil {
		d.retire(replaces)
	}
	return nil
}

// retireGrace is how long an old inbound SA keeps accepting packets after
// a rekey, for those already in flight.
const retireGrace = 2 * time.Second

// retire deletes a replaced child: its outbound SA at once (the newer one
// carries the traffic), a delete to the peer, its inbound SA a little
// later.
func (d *Daemon) retire(c *childSA) {
	d.mu.Lock()
	if c.dead {
		d.mu.Unlock()
		return
	}
	d.stopChildLocked(c)
	sa := d.usableSA(c)
	d.mu.Unlock()
	_ = d.inst.DeleteSA(c.out)
	if sa != nil {
		d.sendDeleteChild(sa, c.in)
	}
	d.clk.AfterFunc(retireGrace, func() { _ = d.inst.DeleteSA(c.in) })
}

// usableSA returns an established IKE SA with the child's peer. Daemon.mu
// must be held.
func (d *Daemon) usableSA(c *childSA) *ikeSA {
	if c.ikesa != nil && c.ikesa.established && !c.ikesa.dead {
		return c.ikesa
	}
	if sa := d.findIKESA(c.in.Dst, c.out.Dst); sa != nil && sa.established {
		return sa
	}
	return nil
}

// stopChildLocked unlinks a child from the tunnel and the index and stops
// its timers. Daemon.mu must be held.
func (d *Daemon) stopChildLocked(c *childSA) {
	c.dead = true
	d.stopLifeLocked(&c.life)
	if r := c.retryTimer(); r != nil {
		r.Stop()
	}
	d.deleteChildLocked(c)
	tu := c.tu
	for i, x := range tu.children {
		if x == c {
			tu.children = append(tu.children[:i], tu.children[i+1:]...)
			break
		}
	}
}

// removeChild deletes a child SA pair at once; the tunnel goes down if it
// was its last.
func (d *Daemon) removeChild(c *childSA, reason string) {
	d.mu.Lock()
	if c.dead {
		d.mu.Unlock()
		return
	}
	d.stopChildLocked(c)
	tu := c.tu
	// A peer that rekeyed deletes the old child right after its QM3,
	// which may overtake this end's install of the new one (QM_R2): the
	// tunnel stays up for it (peerNegotiationFailed takes it down if it
	// fails).
	down := len(tu.children) == 0 && tu.state == stateUp && tu.qm != "QM_R2"
	if down {
		tu.state = stateDown
		tu.lastError = reason
	}
	sa := d.usableSA(c)
	name := tu.cfg.Name
	// A pair the peer deletes once a newer one replaced it (the peer
	// rekeyed it, and switched) may still have the peer's last packets
	// on their way, behind its delete: the inbound SA takes them for
	// retireGrace, as retire's does.
	replaced := reason == "deleted by the peer" && tu.newest(c.local(), c.remote()) != nil
	d.mu.Unlock()
	_ = d.inst.DeleteSA(c.out)
	if replaced {
		d.clk.AfterFunc(retireGrace, func() { _ = d.inst.DeleteSA(c.in) })
	} else {
		_ = d.inst.DeleteSA(c.in)
	}
	if sa != nil && reason != "deleted by the peer" {
		d.sendDeleteChild(sa, c.in)
	}
	if down && d.lis != nil {
		d.lis.TunnelDown(name, reason)
	}
}

// peerDeleted handles the peer's delete of the SA it receives on, which is
// this end's outbound SA: a child's, or a rekey's still waiting to take
// over (the peer gave up its quick mode after QM2).
func (d *Daemon) peerDeleted(out ipsec.SAID) {
	d.mu.Lock()
	c := d.childLocked(out)
	if c != nil && c.out != out {
		c = nil // a delete names the peer's inbound SPI only
	}
	var s *successor
	if c == nil {
		s = d.successorByOutLocked(out)
	}
	d.mu.Unlock()
	if s != nil {
		_ = d.inst.DeleteSA(s.c.in)
		d.negotiationFailed(s.plan, out.Dst, "quick mode: the peer deleted the new pair")
		return
	}
	if c != nil && !d.takeOver(c) {
		d.removeChild(c, "deleted by the peer")
	}
}

// successorByOutLocked finds the rekey waiting to take over whose
// outbound SA would be out, and ends its wait. Daemon.mu must be held.
func (d *Daemon) successorByOutLocked(out ipsec.SAID) *successor {
	for in, old := range d.pendingIn {
		if s := old.successorOf(); s != nil && !s.done && s.c.out == out {
			s.done = true
			delete(d.pendingIn, in)
			return s
		}
	}
	return nil
}

// rekeyChild starts a quick mode to replace c, for its selectors, before
// it expires; a child a newer one with its selectors replaced (the peer
// rekeyed it) is left to expire.
func (d *Daemon) rekeyChild(c *childSA) {
	d.mu.Lock()
	tu := c.tu
	if c.dead || c.rekeying || c.retryTimer() != nil || c != tu.newest(c.local(), c.remote()) {
		d.mu.Unlock()
		return
	}
	c.rekeying = true
	plan := &qmPlan{tu: tu, local: c.local(), remote: c.remote(), replaces: c, retry: tu.retryFor(c.local(), c.remote())}
	d.mu.Unlock()
	d.negotiate(plan)
}

// tunnelDown deletes every SA of a tunnel.
func (d *Daemon) tunnelDown(tu *tunnel, reason string) {
	d.mu.Lock()
	cs := append([]*childSA(nil), tu.children...)
	d.mu.Unlock()
	for _, c := range cs {
		d.dropSuccessor(c)
		d.removeChild(c, reason)
	}
}

func hexSPI(spi uint32) string {
	const digits = "0123456789abcdef"
	b := []byte("0x00000000")
	for i := 9; i >= 2; i-- {
		b[i] = digits[spi&0xf]
		spi >>= 4
	}
	return string(b)
}
