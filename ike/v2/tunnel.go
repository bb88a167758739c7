package v2

import (
	"net/netip"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// tunnelState is where a signaled tunnel stands.
type tunnelState uint8

const (
	tunnelDown tunnelState = iota
	tunnelNegotiating
	tunnelUp
)

func (s tunnelState) String() string { return [...]string{"down", "negotiating", "up"}[s] }

// tunnel is a signaled tunnel's negotiation state. Guarded by Daemon.mu.
type tunnel struct {
	cfg       ike.Tunnel
	state     tunnelState
	peer      netip.AddrPort // where its SAs go, once negotiated
	children  []*childSA     // live child SAs, oldest first
	busy      bool           // a negotiation this end started is running
	lastError string
	rekeys    int
	onBackup  bool           // the backup destination is in use (failover.go)
	hist      *tunnelHistory // failover history, nil until needed
}

// cur returns the newest child SA.
func (tu *tunnel) cur() *childSA {
	if len(tu.children) == 0 {
		return nil
	}
	return tu.children[len(tu.children)-1]
}

// remoteAddr is where this end initiates to: the peer it learned, or the
// destination in use; invalid for a tunnel known only by identity.
func (tu *tunnel) remoteAddr() netip.Addr {
	if tu.peer.IsValid() {
		return tu.peer.Addr()
	}
	return tu.dest()
}

// status describes the tunnel. Daemon.mu must be held.
func (d *Daemon) tunnelStatus(tu *tunnel, now time.Time) ike.TunnelStatus {
	st := ike.TunnelStatus{Name: tu.cfg.Name, State: tu.state.String(), Peer: tu.peer, Rekeys: tu.rekeys,
		LastError: tu.lastError, Destination: tu.dest(), Failover: d.failoverStatusLocked(tu, now)}
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

// Acquire starts negotiating a child SA for a tunnel that has none: a
// CREATE_CHILD_SA on the IKE SA with its destination, or IKE_SA_INIT and
// IKE_AUTH first when there is none. It does nothing if the tunnel is up
// or negotiating, or is known only by an identity and waits for its peer.
func (d *Daemon) Acquire(name string) {
	d.mu.Lock()
	tu := d.tunnels[name]
	if tu == nil || d.closed || tu.state != tunnelDown || tu.busy {
		d.mu.Unlock()
		return
	}
	local, remote := tu.cfg.Source, tu.remoteAddr()
	if !remote.IsValid() {
		tu.lastError = "the destination is known only by its identity: waiting for the peer to connect"
		d.mu.Unlock()
		return
	}
	tu.state, tu.busy = tunnelNegotiating, true
	d.mu.Unlock()
	d.negotiate(name, local, remote)
}

// negotiate gets a child SA for the tunnel on the IKE SA between local and
// remote, making one if needed.
func (d *Daemon) negotiate(name string, local, remote netip.Addr) {
	for {
		d.mu.Lock()
		sa := d.findIKESA(local, remote)
		d.mu.Unlock()
		if sa == nil {
			d.initiate(local, remote, name)
			return
		}
		sa.lock()
		switch sa.state {
		case stateEstablished:
			sa.createChild(name, nil)
		case stateInitSent, stateIntSent, stateAuthSent, stateInitDone:
			sa.waiting = append(sa.waiting, name)
		default: // it died meanwhile: look again
			sa.unlock()
			continue
		}
		sa.unlock()
		return
	}
}

// negotiationFailed records a failed negotiation for a tunnel and tells
// the listener.
func (d *Daemon) negotiationFailed(name string, remote netip.Addr, reason string) {
	d.mu.Lock()
	tu := d.tunnels[name]
	if tu == nil {
		d.mu.Unlock()
		return
	}
	tu.lastError, tu.busy = reason, false
	if tu.state == tunnelNegotiating {
		tu.state = tunnelDown
	}
	d.mu.Unlock()
	d.log.Info("negotiation failed", "tunnel", name, "remote", remote, "reason", reason)
	if d.lis != nil {
		d.lis.NegotiationFailed(name, reason)
	}
}

// Expire handles a lifetime crossing the data path reports: a soft one
// rekeys the child SA, a hard one deletes it.
func (d *Daemon) Expire(id ipsec.SAID, hard bool) {
	d.mu.Lock()
	c := d.children[id]
	d.mu.Unlock()
	if c == nil {
		return
	}
	if hard {
		d.deleteChild(c, "lifetime expired", true)
		return
	}
	sa := d.lockOwner(c)
	sa.rekeyChild(c)
	sa.unlock()
}

// lifetimeFor returns a tunnel's child SA lifetime. Daemon.mu must be
// held.
func (d *Daemon) lifetimeFor(t *ike.Tunnel) ipsec.Lifetime {
	if t.Lifetime != (ipsec.Lifetime{}) {
		return t.Lifetime
	}
	return d.cfg.Lifetime
}
