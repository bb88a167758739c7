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
	local     selector.Selector
	remote    selector.Selector
	pfs       int
	lifetime  ipsec.Lifetime
	created   time.Time

	ni, nr []byte // the nonces of the exchange that made it (§2.8.1)

	soft, hard clock.Timer
	rekeying   bool            // a CREATE_CHILD_SA this end started replaces it
	collision  *childCollision // the peer rekeyed it too, meanwhile (§2.8.1)
	retry      clock.Timer     // a rekey waiting after TEMPORARY_FAILURE (§2.25)
	replaced   bool            // a newer child replaced it: its Delete is under way
	dead       bool

	// successorOf is the child the peer's rekey made this one to replace
	// (this end answered it): its outbound SA waits in pendingOut until
	// that child is gone, as the peer installs its inbound SA only once it
	// has the answer; outWait installs it after outboundWait regardless.
	successorOf *childSA
	pendingOut  *ike.UserSA
	outWait     clock.Timer
}

// outboundWait is how long a child this end made answering the peer's
// rekey keeps its outbound SA back when the peer does not delete the old
// one: long enough for the answer to reach the peer and be acted on.
const outboundWait = 3 * time.Second

// childKeys are the keys of a new child SA, split from KEYMAT (§2.17).
type childKeys struct {
	inEnc, inAuth, outEnc, outAuth []byte
}

// splitKeymat takes the keys of a child SA from KEYMAT: "all keys for SAs
// carrying data from the initiator to the responder are taken before SAs
// going in the other direction", each SA's encryption key before its
// integrity key (§2.17). initiator is whether this end started the
// exchange that made the child.
func splitKeymat(km []byte, t transform.Transform, initiator bool) childKeys {
	take := func(n int) []byte {
		k := append([]byte(nil), km[:n]...)
		km = km[n:]
		return k
	}
	ie, ia := take(t.CipherKeyLen()), take(t.AuthKeyLen())
	re, ra := take(t.CipherKeyLen()), take(t.AuthKeyLen())
	if initiator {
		return childKeys{outEnc: ie, outAuth: ia, inEnc: re, inAuth: ra}
	}
	return childKeys{outEnc: re, outAuth: ra, inEnc: ie, inAuth: ia}
}

// keymatLen is the KEYMAT length a transform needs.
func keymatLen(t transform.Transform) int { return 2 * (t.CipherKeyLen() + t.AuthKeyLen()) }

// install installs a negotiated child SA: its inbound SA, then its
// outbound one, and makes it the tunnel's newest. With replaces set (this
// end rekeyed it), the old child's outbound SA goes next and a Delete of
// it is sent; its inbound SA goes when the Delete is answered: make before
// break. The SA's mutex must be held.
func (sa *ikeSA) install(c *childSA, k childKeys, replaces *childSA) {
	d := sa.d
	now := d.clk.Now()
	c.created = now
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
		c.soft = d.clk.AfterFunc(d.jitter(c.lifetime.Time), func() {
			owner := d.lockOwner(c)
			defer owner.unlock()
			owner.rekeyChild(c)
		})
		c.hard = d.clk.AfterFunc(c.lifetime.Time, func() { d.deleteChild(c, "lifetime expired", true) })
	}
	d.mu.Lock()
	tu := d.tunnels[c.tunnel]
	wasUp := false
	if tu != nil {
		wasUp = tu.state == tunnelUp
		tu.children = append(tu.children, c)
		tu.state, tu.busy, tu.lastError, tu.peer = tunnelUp, false, "", sa.remote
		d.failoverDoneLocked(tu, c)
		if replaces != nil || wasUp {
			tu.rekeys++
			d.counters.Rekeys++
		}
	}
	d.children[c.in], d.children[c.out] = c, c
	d.counters.QuickModesCompleted++
	d.mu.Unlock()
	name, peer := c.tunnel, sa.remote
	// Answering the peer's rekey: send on the new SA once the peer has
	// it, which it shows by deleting the old child (§2.8; strongSwan's
	// responder does the same), so that no packet meets a peer that has
	// no SA for it yet.
	if old := c.successorOf; old != nil && !old.dead && wasUp {
		c.pendingOut = &out
		c.outWait = d.clk.AfterFunc(outboundWait, func() {
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
			"transform", c.transform.String(), "encap", c.encap)
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
	out := c.pendingOut
	if out == nil || c.dead {
		return
	}
	c.pendingOut = nil
	if c.outWait != nil {
		c.outWait.Stop()
	}
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

// deletePayload is the Delete of a child SA: its inbound SPI, the one the
// peer sends to (§3.11).
func deletePayload(c *childSA) Payload {
	p := ProtoESP
	if c.transform.Protocol == transform.AH {
		p = ProtoAH
	}
	return Payload{Type: PayloadDelete, Body: (&Delete{Protocol: p, SPIs: []uint32{c.in.SPI}}).marshal()}
}

func (sa *ikeSA) stopTimers(c *childSA) {
	for _, t := range []clock.Timer{c.soft, c.hard, c.retry, c.outWait} {
		if t != nil {
			t.Stop()
		}
	}
}

// forgetChild unlinks a child from its IKE SA, its tunnel and the index,
// and reports whether its tunnel lost its last child. The SA's mutex must
// be held.
func (sa *ikeSA) forgetChild(c *childSA) (down bool) {
	if c.dead {
		return false
	}
	c.dead = true
	sa.stopTimers(c)
	if c.pendingOut != nil {
		c.pendingOut.CipherKey.Zero()
		c.pendingOut.AuthKey.Zero()
		c.pendingOut = nil
	}
	for i, x := range sa.children {
		if x == c {
			sa.children = append(sa.children[:i], sa.children[i+1:]...)
			break
		}
	}
	// The child that replaces it sends from now on, before this one's
	// outbound SA goes (the after functions run in order).
	for _, x := range sa.children {
		if x.successorOf == c {
			sa.installOutbound(x)
		}
	}
	d := sa.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.children[c.in] == c {
		delete(d.children, c.in)
	}
	if d.children[c.out] == c {
		delete(d.children, c.out)
	}
	tu := d.tunnels[c.tunnel]
	if tu == nil {
		return false
	}
	for i, x := range tu.children {
		if x == c {
			tu.children = append(tu.children[:i], tu.children[i+1:]...)
			break
		}
	}
	if len(tu.children) == 0 && tu.state == tunnelUp {
		tu.state = tunnelDown
		return true
	}
	return false
}

// removeChild deletes a child's SAs from the Installer (the old outbound
// one is already gone if it was replaced) without telling the peer; its
// tunnel goes down if it was its last. The SA's mutex must be held.
func (sa *ikeSA) removeChild(c *childSA, reason string) {
	if c.dead {
		return
	}
	replaced := c.replaced
	rekeyed := replaced
	for _, x := range sa.children {
		rekeyed = rekeyed || x.successorOf == c
	}
	down := sa.forgetChild(c)
	d := sa.d
	if down {
		d.mu.Lock()
		if tu := d.tunnels[c.tunnel]; tu != nil {
			tu.lastError = reason
		}
		d.mu.Unlock()
	}
	sa.after(func() {
		if !replaced {
			_ = d.inst.DeleteSA(c.out)
		}
		if rekeyed && d.inboundGrace > 0 {
			// Packets the peer sealed on the old SA before it switched may
			// still be on their way (a userspace ESP queues them apart
			// from IKE): its inbound SA takes them a while longer.
			d.clk.AfterFunc(d.inboundGrace, func() { _ = d.inst.DeleteSA(c.in) })
		} else {
			_ = d.inst.DeleteSA(c.in)
		}
		if down && d.lis != nil {
			d.lis.TunnelDown(c.tunnel, reason)
		}
	})
}

// rekeyedInboundGrace is how long a rekeyed child's inbound SA outlives
// it, as ike/v1's replaced SAs do (strongSwan: delete_rekeyed_delay).
const rekeyedInboundGrace = 2 * time.Second

// deleteChild deletes a child SA, telling the peer with an INFORMATIONAL
// Delete when tell is set and the IKE SA is up (§1.4.1). It takes the
// mutex of the child's IKE SA.
func (d *Daemon) deleteChild(c *childSA, reason string, tell bool) {
	sa := d.lockOwner(c)
	defer sa.unlock()
	sa.deleteChildLocked(c, reason, tell)
}

// deleteChildLocked is deleteChild with the SA's mutex held.
func (sa *ikeSA) deleteChildLocked(c *childSA, reason string, tell bool) {
	if c.dead {
		return
	}
	sa.removeChild(c, reason)
	if tell && sa.state == stateEstablished {
		sa.request(&request{exchange: Informational, kind: reqChildDelete,
			build:      func(sa *ikeSA) ([]Payload, error) { return []Payload{deletePayload(c)}, nil },
			onResponse: func(sa *ikeSA, m *Message) { sa.heard() },
			onTimeout:  func(sa *ikeSA) { sa.peerGone("the peer did not answer a Delete") },
		})
	}
}

// lockOwner locks and returns the IKE SA a child lives on, which an IKE
// SA rekey may change while the caller waits for the mutex.
func (d *Daemon) lockOwner(c *childSA) *ikeSA {
	for {
		d.mu.Lock()
		sa := c.sa
		d.mu.Unlock()
		sa.lock()
		d.mu.Lock()
		same := c.sa == sa
		d.mu.Unlock()
		if same {
			return sa
		}
		sa.unlock()
	}
}

// childByOut returns the live child whose outbound SPI is spi.
func (sa *ikeSA) childByOut(p Protocol, spi uint32) *childSA {
	for _, c := range sa.children {
		if c.out.SPI == spi && protocolOf(c.transform) == p {
			return c
		}
	}
	return nil
}

func protocolOf(t transform.Transform) Protocol {
	if t.Protocol == transform.AH {
		return ProtoAH
	}
	return ProtoESP
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
