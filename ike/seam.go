package ike

import (
	"net/netip"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// This file is the seam between IKE and the ISM line card, after
// strongSwan's kernel_ipsec_t: IKE negotiates, the ISM installs. Package ism
// implements Installer and Transport and consumes Listener events; package
// ike never touches packets.

// UserSA is an IPsec SA negotiated by IKE, in one direction.
type UserSA struct {
	Tunnel    string // the secure tunnel it belongs to
	Inbound   bool
	Transform transform.Transform
	// Src and Dst are the outer addresses of the packets the SA carries.
	Src, Dst netip.Addr
	// UDPEncap is set when NAT traversal floated to UDP (RFC 3948); the
	// ports are those of the packets the SA carries.
	UDPEncap         bool
	SrcPort, DstPort uint16
	CipherKey        ipsec.Key // AEAD keys include the salt
	AuthKey          ipsec.Key
	// Soft asks for a rekey when crossed; Hard makes the SA unusable.
	Soft, Hard ipsec.Lifetime
	// Local and Remote are the negotiated selectors, this end's and the
	// peer's (IKEv1 IDci/IDcr, one each; IKEv2 TSi/TSr, one or more): the
	// traffic the SA carries. Rekeys keep them.
	Local, Remote selector.Set
	PFSGroup      int // 0 when no PFS
	// Mode is the IPsec mode; IKEv1 negotiates tunnel mode only.
	Mode ipsec.Mode
	// ESN: the SA uses 64-bit extended sequence numbers (IKEv2 only).
	ESN bool
}

// SAUsage is what the data path counted for an SA.
type SAUsage struct {
	Bytes, Packets uint64
	// LastUsed is, for an outbound SA, when a packet was last sent on it;
	// for an inbound SA, when a packet last arrived on it and verified.
	// Zero if never used. Dead peer detection reads it.
	LastUsed time.Time
}

// Installer installs and removes the SAs IKE negotiates. Package ism
// implements it; its methods are safe for concurrent use.
type Installer interface {
	// AllocateSPI returns an SPI for a new inbound SA on the tunnel, unique
	// for (SPI, protocol, local) and never in 0..255.
	AllocateSPI(tunnel string, p transform.Protocol, local netip.Addr) (uint32, error)
	// AddSA installs an SA. On a rekey the new inbound SA is added before
	// the old one is deleted (make before break). The Installer takes
	// ownership of the key slices in sa.
	AddSA(id ipsec.SAID, sa UserSA) error
	// DeleteSA removes an SA and zeroes its keys.
	DeleteSA(id ipsec.SAID) error
	// QuerySA returns the SA's usage counters.
	QuerySA(id ipsec.SAID) (SAUsage, error)
}

// Transport sends IKE messages from the tunnel endpoints' sockets, which the
// ISM owns in the transport virtual router. When local's port is 4500 the
// transport adds the non-ESP marker (RFC 3948 §2.2).
type Transport interface {
	Send(local, remote netip.AddrPort, msg []byte) error
}

// EndpointUpdater is implemented by an Installer that can move an
// installed SA to new outer addresses and ports without a new SPI or keys:
// IKEv2 follows a peer behind a NAT whose mapping changed (RFC 7296
// §2.23). Without it the IKE SA follows and the SAs keep their ports
// until rekeyed.
type EndpointUpdater interface {
	UpdateSAEndpoints(id ipsec.SAID, src, dst netip.AddrPort) error
}

// KeepaliveSender is implemented by a Transport that can send NAT-T
// keepalives: a single 0xFF byte on UDP 4500 with no non-ESP marker
// (RFC 3948 §2.3). IKE sends them while this end is behind a NAT.
type KeepaliveSender interface {
	SendKeepalive(local, remote netip.AddrPort) error
}

// Listener receives tunnel state changes from IKE. Calls come from IKE's
// goroutines and must not block.
type Listener interface {
	// TunnelUp: the tunnel has SAs with the peer at the given address.
	TunnelUp(tunnel string, peer netip.AddrPort)
	// TunnelDown: the tunnel lost its SAs (delete, expiry, DPD).
	TunnelDown(tunnel, reason string)
	// NegotiationFailed: a negotiation of the tunnel's SAs failed, and
	// its state changed: the first failure since the last success, or a
	// failure for another reason than the last. Repeated failures are
	// counted in Status (TunnelStatus.Negotiations) and put off by the
	// back-off, not reported again.
	NegotiationFailed(tunnel, reason string)
	// PeerDead: DPD declared the tunnel's destination peer dead at
	// detectedAt. Every SA between the two endpoints is deleted;
	// TunnelDown follows, then Failover if the tunnel has a backup.
	PeerDead(tunnel string, peer netip.Addr, detectedAt time.Time)
	// Failover: the tunnel switched from one destination to the other
	// and negotiates new SAs there; TunnelUp follows when they are in.
	Failover(tunnel string, from, to netip.Addr, reason string)
}
