package ike

import (
	"net/netip"

	"github.com/ismgw/ism/ipsec"
)

// Daemon is an IKE daemon: it negotiates and maintains the SAs of signaled
// tunnels. Package ism gives it every IKE datagram and every data path
// event; ike/v1.New returns the IKEv1 daemon. Its methods are safe for
// concurrent use and never block on the network.
type Daemon interface {
	// Receive handles one IKE datagram received on local (UDP 500 or
	// 4500, the non-ESP marker already removed) from remote.
	Receive(local, remote netip.AddrPort, msg []byte)
	// Acquire starts negotiating SAs for a signaled tunnel that has none;
	// it does nothing if the tunnel is up or negotiating.
	Acquire(tunnel string)
	// AcquireFor starts negotiating a child SA for traffic from src to dst
	// (the inner addresses of a packet no SA of the tunnel covered), unless
	// one covers it, one is being negotiated, or the back-off after failed
	// negotiations says to wait. The selectors proposed are the widest part
	// of the tunnel's around the packet that its child SAs leave (the
	// tunnel's whole selectors when it has none); IKEv2 puts the packet's
	// addresses first (RFC 7296 §2.9). Invalid addresses are Acquire.
	AcquireFor(tunnel string, src, dst netip.Addr)
	// Expire reports that an SA crossed its soft (rekey) or hard lifetime
	// in the data path.
	Expire(id ipsec.SAID, hard bool)
	// Reconfigure replaces the configuration; established SAs stay as they
	// are until renegotiated.
	Reconfigure(cfg Config) error
	// Status returns a snapshot for show commands.
	Status() Status
	// Close deletes every SA, notifies the peers and stops the daemon.
	Close() error
}
