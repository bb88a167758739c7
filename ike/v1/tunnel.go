package v1

import (
	"net/netip"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// tunnelState is where a signaled tunnel stands.
type tunnelState uint8

const (
	stateDown tunnelState = iota
	stateNegotiating
	stateUp
)

func (s tunnelState) String() string {
	return [...]string{"down", "negotiating", "up"}[s]
}

// tunnel is a signaled tunnel's negotiation state. Guarded by Daemon.mu.
type tunnel struct {
	cfg       ike.Tunnel
	state     tunnelState
	peer      netip.AddrPort // where its SAs go: learned for FQDN destinations
	sa        *ikeSA         // the IKE SA its SAs were last negotiated on
	children  []*childSA     // live child SAs, oldest first
	qm        string         // quick mode state while negotiating
	qmBusy    bool           // a quick mode this end started is running
	lastError string
	rekeys    int
	onBackup  bool           // the backup destination is in use
	hist      *tunnelHistory // DPD and failover history, nil until needed
}

// dest returns the destination in use: the configured one, or the backup
// after a failover; invalid for a tunnel known only by its identity.
func (tu *tunnel) dest() netip.Addr {
	if tu.onBackup {
		return tu.cfg.BackupDestination
	}
	return tu.cfg.Destination
}

// current returns the tunnel's configuration with the destination in use
// as its destination.
func (tu *tunnel) current() ike.Tunnel {
	t := tu.cfg
	t.Destination = tu.dest()
	return t
}

// isCurrent reports whether remote is the destination the tunnel uses (or
// may use, when it knows its peer only by identity).
func (tu *tunnel) isCurrent(remote netip.Addr) bool {
	if tu.dest().IsValid() {
		return remote == tu.dest()
	}
	return !tu.peer.IsValid() || tu.peer.Addr() == remote
}

// cur returns the newest child SA.
func (tu *tunnel) cur() *childSA {
	if len(tu.children) == 0 {
		return nil
	}
	return tu.children[len(tu.children)-1]
}

// childSA is a pair of IPsec SAs (inbound and outbound) negotiated by one
// quick mode. Guarded by Daemon.mu.
type childSA struct {
	tu        *tunnel
	ikesa     *ikeSA
	in, out   ipsec.SAID
	transform transform.Transform
	pfs       int
	lifetime  ipsec.Lifetime
	encap     bool
	initiator bool
	created   time.Time
	soft      clock.Timer
	hard      clock.Timer
	rekeying  bool
	dead      bool
	// successor is the rekey that replaces this pair, waiting to take
	// over (switchLater).
	successor *successor
}

// tunnelStatusLocked describes a tunnel; newest holds the newest
// established IKE SA of each peer. Daemon.mu must be held.
func (d *Daemon) tunnelStatusLocked(tu *tunnel, now time.Time, newest map[peerKey]*ikeSA) ike.TunnelStatus {
	st := ike.TunnelStatus{Name: tu.cfg.Name, State: tu.state.String(), Peer: tu.peer, QuickMode: tu.qm,
		Rekeys: tu.rekeys, LastError: tu.lastError, Destination: tu.dest()}
	st.DPD = d.tunnelDPDLocked(tu, newest)
	st.Failover = d.tunnelFailoverLocked(tu, now)
	if c := tu.cur(); c != nil {
		st.Transform, st.PFSGroup, st.UDPEncap, st.Lifetime = c.transform, c.pfs, c.encap, c.lifetime
		st.InboundSPI, st.OutboundSPI = c.in.SPI, c.out.SPI
		if c.lifetime.Time > 0 {
			if left := c.created.Add(c.lifetime.Time).Sub(now); left > 0 {
				st.TimeLeft = left
			}
		}
	}
	return st
}

// Acquire starts negotiating SAs for a tunnel without any: a quick mode on
// the IKE SA with the tunnel's destination, after a phase 1 if there is
// none. A tunnel whose destination is known only by identity waits for the
// peer to connect first.
func (d *Daemon) Acquire(name string) {
	d.mu.Lock()
	tu := d.tunnels[name]
	if tu == nil || d.closed || tu.state != stateDown || tu.qmBusy {
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	d.negotiate(tu, false)
}

// negotiate starts a quick mode for tu, after a phase 1 if needed. With
// rekey set the tunnel stays up meanwhile.
func (d *Daemon) negotiate(tu *tunnel, rekey bool) {
	d.mu.Lock()
	if tu.qmBusy || d.closed {
		d.mu.Unlock()
		return
	}
	local := tu.cfg.Source
	remote := tu.dest()
	if tu.peer.IsValid() {
		remote = tu.peer.Addr()
	}
	if !remote.IsValid() {
		tu.lastError = "the destination is known only by its identity: waiting for the peer to connect"
		d.mu.Unlock()
		return
	}
	if !rekey {
		tu.state = stateNegotiating
	}
	tu.qmBusy = true
	name := tu.cfg.Name
	sa := d.findIKESA(local, remote)
	switch {
	case sa != nil && sa.established:
		d.mu.Unlock()
		d.startQuickMode(name, sa)
		return
	case sa != nil:
		sa.waiting = append(sa.waiting, name)
		d.mu.Unlock()
		return
	}
	mode := tu.cfg.Mode
	d.mu.Unlock()
	if d.startPhase1(mode, tu, local, remote, []string{name}) == nil {
		d.negotiationFailed(name, remote, "daemon closed")
	}
}

// negotiationFailed records a failed negotiation with remote for a
// tunnel. A failure with a destination the tunnel no longer uses (it
// failed over meanwhile) is only logged. If a failover waited for the
// negotiation's outcome, it happens now.
func (d *Daemon) negotiationFailed(name string, remote netip.Addr, reason string) {
	d.mu.Lock()
	tu := d.tunnels[name]
	if tu == nil {
		d.mu.Unlock()
		return
	}
	if remote.IsValid() && !tu.isCurrent(remote) {
		d.mu.Unlock()
		d.log.Debug("negotiation with a former destination failed", "tunnel", name, "remote", remote, "reason", reason)
		return
	}
	tu.lastError = reason
	tu.qmBusy = false
	tu.qm = ""
	if tu.state == stateNegotiating {
		tu.state = stateDown
	}
	lost := tu.state == stateUp && len(tu.children) == 0 // see removeChild
	if lost {
		tu.state = stateDown
	}
	for _, c := range tu.children {
		c.rekeying = false
	}
	var due bool
	var heard time.Time
	if h := tu.hist; h != nil && h.due && tu.state == stateDown {
		h.due, heard = false, h.pendingHeard
		due = true
	}
	from := tu.dest()
	d.mu.Unlock()
	if d.lis != nil {
		d.lis.NegotiationFailed(name, reason)
		if lost {
			d.lis.TunnelDown(name, reason)
		}
	}
	if due {
		d.failover(tu, from, reason, heard)
	}
}

// Expire handles a lifetime crossing the data path reports: a soft one
// starts a rekey, a hard one deletes the SA pair.
func (d *Daemon) Expire(id ipsec.SAID, hard bool) {
	d.mu.Lock()
	c := d.children[id]
	d.mu.Unlock()
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
// in, and makes the child the tunnel's newest. With replaces set (this end
// started the rekey) the child it replaces is deleted afterwards: make
// before break.
func (d *Daemon) installOutbound(c *childSA, out ike.UserSA, replaces *childSA) error {
	if err := d.inst.AddSA(c.out, out); err != nil {
		_ = d.inst.DeleteSA(c.in)
		return err
	}
	d.mu.Lock()
	tu := c.tu
	wasUp := tu.state == stateUp
	c.created = d.now()
	d.putChildLocked(c)
	tu.children = append(tu.children, c)
	tu.state = stateUp
	tu.lastError = ""
	tu.qm = ""
	if replaces != nil || wasUp {
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
		c.soft = d.clk.AfterFunc(soft, func() { d.rekeyChild(c) })
		c.hard = d.clk.AfterFunc(c.lifetime.Time, func() { d.Expire(c.in, true) })
	}
	peer := tu.peer
	name := tu.cfg.Name
	d.mu.Unlock()
	d.log.Info("SA installed", "tunnel", name, "spi_in", hexSPI(c.in.SPI), "spi_out", hexSPI(c.out.SPI), "transform", c.transform.String())
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
	for _, t := range []clock.Timer{c.soft, c.hard} {
		if t != nil {
			t.Stop()
		}
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
	// tunnel stays up for it (negotiationFailed takes it down if it
	// fails).
	down := len(tu.children) == 0 && tu.state == stateUp && tu.qm != "QM_R2"
	if down {
		tu.state = stateDown
		tu.lastError = reason
	}
	sa := d.usableSA(c)
	name := tu.cfg.Name
	d.mu.Unlock()
	_ = d.inst.DeleteSA(c.out)
	_ = d.inst.DeleteSA(c.in)
	if sa != nil && reason != "deleted by the peer" {
		d.sendDeleteChild(sa, c.in)
	}
	if down && d.lis != nil {
		d.lis.TunnelDown(name, reason)
	}
}

// peerDeleted handles the peer's delete of the SA it receives on, which is
// this end's outbound SA.
func (d *Daemon) peerDeleted(out ipsec.SAID) {
	d.mu.Lock()
	c := d.children[out]
	if c != nil && c.out != out {
		c = nil // a delete names the peer's inbound SPI only
	}
	d.mu.Unlock()
	if c != nil && !d.takeOver(c) {
		d.removeChild(c, "deleted by the peer")
	}
}

// rekeyChild starts a quick mode to replace c before it expires.
func (d *Daemon) rekeyChild(c *childSA) {
	d.mu.Lock()
	if c.dead || c.rekeying || c != c.tu.cur() {
		d.mu.Unlock()
		return
	}
	c.rekeying = true
	tu := c.tu
	d.mu.Unlock()
	d.negotiate(tu, true)
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
