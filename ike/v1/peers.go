package v1

import (
	"net/netip"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// matchTunnel returns the tunnel a phase 1 peer at remote with identity id
// belongs to: one whose destination in use (its destination, or its
// backup after a failover) is that address, or, for a tunnel
// known only by its identity, one whose remote identity is id (no DNS: the
// seed). Tunnels naming the identity exactly come first. The result is a
// copy, with the destination in use as Destination. Daemon.mu must be
// held; id may be zero when it is not known yet.
func (d *Daemon) matchTunnel(local, remote netip.Addr, id ike.Identity) *ike.Tunnel {
	var byAddr *tunnel
	found := func(tu *tunnel) *ike.Tunnel {
		t := tu.current()
		return &t
	}
	for _, tu := range d.bySource[local] {
		t := tu.cfg
		if dest := tu.dest(); dest.IsValid() {
			if dest != remote {
				continue
			}
			if !t.RemoteID.IsZero() && !id.IsZero() && !t.RemoteID.Equal(id) {
				continue
			}
			if !t.RemoteID.IsZero() && t.RemoteID.Equal(id) {
				return found(tu)
			}
			if byAddr == nil {
				byAddr = tu
			}
			continue
		}
		if !id.IsZero() && t.RemoteID.Equal(id) {
			return found(tu)
		}
	}
	if byAddr == nil {
		return nil
	}
	return found(byAddr)
}

// wantsEncap reports whether a tunnel to remote forces UDP encapsulation.
// Daemon.mu must be held.
func (d *Daemon) wantsEncap(local, remote netip.Addr) bool {
	for _, tu := range d.bySource[local] {
		if tu.dest() == remote && tu.cfg.UDPEncap {
			return true
		}
	}
	return false
}

// pskFor finds the pre-shared key for a peer: by its identity (whole, then
// with user@ stripped), then by its address. Daemon.mu must be held. It
// returns a copy, which the negotiation zeroes when it is done with it:
// Reconfigure and Close zero the table's keys while negotiations that
// looked theirs up may still be computing with them.
func (d *Daemon) pskFor(id ike.Identity, remote netip.Addr) ipsec.Key {
	if !id.IsZero() {
		if k, ok := d.cfg.psk.ForIdentity(id); ok {
			return k.Clone()
		}
	}
	if remote.IsValid() {
		if k, ok := d.cfg.psk.ForAddress(remote); ok {
			return k.Clone()
		}
	}
	return nil
}

// localIdentity returns the identity this end presents to a peer.
func localIdentity(t *ike.Tunnel, local netip.Addr) ike.Identity {
	if t != nil {
		return t.LocalIdentity()
	}
	return ike.AddressIdentity(local)
}
