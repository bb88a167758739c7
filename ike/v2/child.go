package v2

import (
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// childSA is a pair of IPsec SAs (inbound and outbound) negotiated by one
// IKE_AUTH or CREATE_CHILD_SA exchange (RFC 7296 §1.3). Its identity and
// algorithms are immutable once made; the rest is guarded by its IKE SA's
// mutex. It lives on its IKE SA: deleting the IKE SA deletes it (§1.4.1);
// rekeying the IKE SA moves it to the new one (§2.8), so sa changes: it is
// written with Daemon.mu and the mutexes of both IKE SAs held, and read
// under either (Daemon.lockOwner).
type childSA struct {
	sa        *ikeSA
	tunnel    string
	in, out   ipsec.SAID
	transform transform.Transform
	mode      ipsec.Mode
	esn       bool
	encap     bool
	initiator bool // this end started the exchange that made it
	// The other one-byte fields are here too, so that the struct stays
	// within its size class (TestStateSizes).
	rekeying bool // a CREATE_CHILD_SA this end started replaces it
	inRekey  bool // rekeying, as status reads it (Daemon.mu)
	replaced bool // a newer child replaced it: its Delete is under way
	dead     bool
	local    selector.Set // TSi or TSr: this end's
	remote   selector.Set
	pfs      int
	lifetime ipsec.Lifetime
	created  stamp // of Daemon.sched: when installed

	life       lazyTimer  // to the soft lifetime, then to the hard one (armLifetime; Daemon.sched)
	rekeyRetry *ike.Retry // this end's rekeys of it, from the first (Daemon.mu)
	// rk is what the child keeps while a rekey of it is settled (nil
	// otherwise, as with most children most of the time: issue 13).
	rk *childRekey
}

// childRekey is what a child SA keeps while a rekey of it, or the one
// that made it, is settled. Guarded by its IKE SA's mutex; made by
// rekeyState, let go by tidy.
type childRekey struct {
	collision *childCollision // the peer rekeyed it too, meanwhile (§2.8.1)
	retry     clock.Timer     // a rekey waiting after TEMPORARY_FAILURE (§2.25) or a failure (the back-off)

	// successorOf is the child the peer's rekey made this one to replace
	// (this end answered it): its outbound SA waits in pendingOut until
	// that child is gone, as the peer installs its inbound SA only once it
	// has the answer; outWait installs it after outboundWait regardless.
	successorOf *childSA
	pendingOut  *ike.UserSA
	outWait     clock.Timer
}

// rekeyState returns the child's rekey record, making it. The SA's mutex
// must be held.
func (c *childSA) rekeyState() *childRekey {
	if c.rk == nil {
		c.rk = &childRekey{}
	}
	return c.rk
}

// tidy lets the rekey record go once it holds nothing. The SA's mutex must
// be held.
func (c *childSA) tidy() {
	if c.rk != nil && *c.rk == (childRekey{}) {
		c.rk = nil
	}
}

// collision returns the peer's colliding rekey of the child, or nil.
func (c *childSA) collision() *childCollision {
	if c.rk == nil {
		return nil
	}
	return c.rk.collision
}

// successorOf returns the child this one replaces, answering the peer's
// rekey, while that one lives; or nil.
func (c *childSA) successorOf() *childSA {
	if c.rk == nil {
		return nil
	}
	return c.rk.successorOf
}

// retrying reports whether a rekey of the child waits to be tried again.
func (c *childSA) retrying() bool { return c.rk != nil && c.rk.retry != nil }

// rekeys returns the back-off record of this end's rekeys of the child,
// making it: most children are never rekeyed by this end, or once.
// Daemon.mu must be held.
func (c *childSA) rekeys() *ike.Retry {
	if c.rekeyRetry == nil {
		c.rekeyRetry = &ike.Retry{}
	}
	return c.rekeyRetry
}

// status describes the child SA. Daemon.mu must be held.
func (c *childSA) status(s *schedule, now time.Time) ike.ChildStatus {
	st := ike.ChildStatus{Local: c.local, Remote: c.remote, InboundSPI: c.in.SPI, OutboundSPI: c.out.SPI,
		Transform: c.transform, PFSGroup: c.pfs, UDPEncap: c.encap, Lifetime: c.lifetime, Initiator: c.initiator, Rekeying: c.inRekey}
	if c.lifetime.Time > 0 {
		st.TimeLeft = max(0, s.time(c.created).Add(c.lifetime.Time).Sub(now))
	}
	return st
}

// armLifetime arms a child SA's one lifetime timer (a timer costs about
// 150 bytes, and 10,000 tunnels have 10,000 children; its function holds
// d and c alone, 24 bytes): soft from now it rekeys the child (§2.8),
// then it waits for the hard lifetime, created+lifetime, and deletes it.
// The mutex of the SA that owns c must be held, or c not yet be shared.
func (d *Daemon) armLifetime(c *childSA, soft time.Duration) {
	d.sched.arm(&c.life, soft, func() {
		owner := d.lockOwner(c)
		defer owner.unlock()
		if c.dead {
			return
		}
		hard := max(0, d.sched.time(c.created).Add(c.lifetime.Time).Sub(d.clk.Now()))
		d.sched.arm(&c.life, hard, func() { d.deleteChild(c, "lifetime expired", true) })
		owner.rekeyChild(c)
	})
}

// outboundWait is how long a child this end made answering the peer's
// rekey keeps its outbound SA back when the peer does not delete the old
// one: long enough for the answer to reach the peer and be acted on.
const outboundWait = 3 * time.Second

// install installs a negotiated child SA: its inbound SA, then its
// outbound one, and makes it the tunnel's newest. With replaces set (this
// end rekeyed it), the old child's outbound SA goes next and a Delete of
// it is sent; its inbound SA goes when the Delete is answered: make before
// break. The SA's mutex must be held.
func (sa *ikeSA) install(c *childSA, k childKeys, replaces *childSA) {
	d := sa.d
	now := d.clk.Now()
	c.created = d.sched.stamp(now)
	hard := c.lifetime
	soft := ipsec.Lifetime{}
	if hard.Bytes > 0 {
		// A volume rekey starts when 10 % is left, or 16 MiB (at most
		// half) for small volumes, as ike/v1 does.
		soft.Bytes = hard.Bytes - max(hard.Bytes/10, min(hard.Bytes/2, 16<<20))
	}
	base := ike.UserSA{Tunnel: c.tunnel, Transform: c.transform, UDPEncap: c.encap, Soft: soft, Hard: hard,
		Local: c.local, Remote: c.remote, PFSGroup: c.pfs, Mode: c.mode, ESN: c.esn}
	in, out := base, base
	in.Inbound = true
	in.Src, in.Dst = sa.remote.Addr(), sa.local.Addr()
	out.Src, out.Dst = sa.local.Addr(), sa.remote.Addr()
	if c.encap {
		in.SrcPort, in.DstPort = sa.remote.Port(), sa.local.Port()
		out.SrcPort, out.DstPort = sa.local.Port(), sa.remote.Port()
	}
	in.CipherKey, in.AuthKey = k.inEnc, k.inAuth
	out.CipherKey, out.AuthKey = k.outEnc, k.outAuth

	sa.children = append(sa.children, c)
	if c.lifetime.Time > 0 {
		d.armLifetime(c, d.jitter(c.lifetime.Time))
	}
	d.mu.Lock()
	tu := d.tunnels[c.tunnel]
	wasUp, recovered := false, false
	if tu != nil {
		wasUp = tu.state == tunnelUp
		prior := tu.newest(c.local, c.remote) // the child a peer's rekey replaces
		tu.children = append(tu.children, c)
		tu.state, tu.lastError, tu.peer = tunnelUp, "", sa.remote
		d.indexTunnelLocked(tu)
		if c.initiator && replaces == nil {
			recovered = d.negotiatedLocked(tu)
		}
		d.failoverDoneLocked(tu, c)
		if replaces != nil || prior != nil {
			tu.rekeys++
			d.counters.Rekeys++
		}
		if replaces != nil {
			replaces.inRekey = false
		}
	}
	d.fileChildLocked(c, true)
	d.counters.QuickModesCompleted++
	d.mu.Unlock()
	if recovered {
		d.log.Info("negotiation succeeded after failures", "tunnel", c.tunnel, "local", c.local.String(), "remote", c.remote.String())
	}
	name, peer := c.tunnel, sa.remote
	// Answering the peer's rekey: send on the new SA once the peer has
	// it, which it shows by deleting the old child (§2.8; strongSwan's
	// responder does the same), so that no packet meets a peer that has
	// no SA for it yet.
	if old := c.successorOf(); old != nil && !old.dead && wasUp {
		rk := c.rekeyState()
		rk.pendingOut = &out
		rk.outWait = d.clk.AfterFunc(outboundWait, func() {
			owner := d.lockOwner(c)
			defer owner.unlock()
			owner.installOutbound(c)
		})
		sa.after(func() {
			if err := d.inst.AddSA(c.in, in); err != nil {
				d.log.Warn("inbound SA not installed", "tunnel", name, "spi", hexSPI(c.in.SPI), "err", err)
				d.deleteChild(c, "installing the SA failed", true)
			}
		})
		return
	}
	sa.after(func() {
		if err := d.inst.AddSA(c.in, in); err != nil {
			d.log.Warn("inbound SA not installed", "tunnel", name, "spi", hexSPI(c.in.SPI), "err", err)
			d.deleteChild(c, "installing the SA failed", true)
			return
		}
		if err := d.inst.AddSA(c.out, out); err != nil {
			d.log.Warn("outbound SA not installed", "tunnel", name, "spi", hexSPI(c.out.SPI), "err", err)
			_ = d.inst.DeleteSA(c.in)
			owner := d.lockOwner(c)
			owner.forgetChild(c)
			owner.unlock()
			return
		}
		d.log.Info("SA installed", "tunnel", name, "spi_in", hexSPI(c.in.SPI), "spi_out", hexSPI(c.out.SPI),
			"transform", c.transform.String(), "encap", c.encap, "local", c.local.String(), "remote", c.remote.String())
		if !wasUp && d.lis != nil {
			d.lis.TunnelUp(name, peer)
		}
	})
	if replaces != nil {
		sa.retire(replaces)
	}
}

// installOutbound installs the outbound SA a child answering the peer's
// rekey kept back (install), at once. The SA's mutex must be held.
func (sa *ikeSA) installOutbound(c *childSA) {
	if c.rk == nil || c.rk.pendingOut == nil || c.dead {
		return
	}
	out := c.rk.pendingOut
	c.rk.pendingOut = nil
	if c.rk.outWait != nil {
		c.rk.outWait.Stop()
		c.rk.outWait = nil
	}
	c.tidy()
	d, name := sa.d, c.tunnel
	sa.after(func() {
		defer out.CipherKey.Zero()
		defer out.AuthKey.Zero()
		if err := d.inst.AddSA(c.out, *out); err != nil {
			d.log.Warn("outbound SA not installed", "tunnel", name, "spi", hexSPI(c.out.SPI), "err", err)
			d.deleteChild(c, "installing the SA failed", true)
			return
		}
		d.log.Info("SA installed", "tunnel", name, "spi_in", hexSPI(c.in.SPI), "spi_out", hexSPI(c.out.SPI),
			"transform", c.transform.String(), "encap", c.encap)
	})
}

// retire deletes a child that a rekey this end made replaced: its
// outbound SA at once (the new one carries the traffic), then a Delete to
// the peer; its inbound SA when the peer answers (§2.8).
func (sa *ikeSA) retire(old *childSA) {
	if old.dead || old.replaced {
		return
	}
	old.replaced = true
	sa.stopTimers(old)
	d := sa.d
	sa.after(func() { _ = d.inst.DeleteSA(old.out) })
	sa.request(&request{exchange: Informational, kind: reqChildDelete,
		build: func(sa *ikeSA) ([]Payload, error) { return []Payload{deletePayload(old)}, nil },
		onResponse: func(sa *ikeSA, m *Message) {
			sa.heard()
			sa.removeChild(old, "rekeyed")
		},
		onTimeout: func(sa *ikeSA) { sa.peerGone("the peer did not answer a Delete") },
	})
}
