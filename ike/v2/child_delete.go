package v2

import (
	"time"

	"github.com/ismgw/ism/transform"
)

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
	sa.d.sched.stop(&c.life)
	if c.rk != nil {
		stopTimers(&c.rk.retry, &c.rk.outWait)
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
	if c.rk != nil && c.rk.pendingOut != nil {
		c.rk.pendingOut.CipherKey.Zero()
		c.rk.pendingOut.AuthKey.Zero()
		c.rk.pendingOut = nil
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
		if x.successorOf() == c {
			sa.installOutbound(x)
			x.rk.successorOf = nil // or each rekey would keep every child before it
			x.tidy()
		}
	}
	d := sa.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fileChildLocked(c, false)
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
		rekeyed = rekeyed || x.successorOf() == c
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
