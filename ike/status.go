package ike

import (
	"net/netip"
	"time"

	"github.com/ismgw/ism/transform"
)

// Status is a snapshot of the daemon for show commands. It never holds key
// material.
type Status struct {
	IKESAs   []IKESAStatus
	Tunnels  []TunnelStatus
	Counters Counters
}

// IKESAStatus describes one IKE SA (`show ike sa`).
type IKESAStatus struct {
	Local, Remote    netip.AddrPort
	ICookie, RCookie string // hex
	Initiator        bool
	Mode             Phase1Mode
	State            string // e.g. "MM_KEY_I", "established"
	Established      bool
	Policy           Policy // the negotiated rule (lifetime: the one in force)
	RemoteID         string
	NATT             bool          // floated to UDP 4500
	LifetimeLeft     time.Duration // zero until established
	Rekeys           int           // phase 1 renegotiations that replaced it
}

// TunnelStatus describes one signaled tunnel (`show ipsec tunnel detail`).
type TunnelStatus struct {
	Name        string
	State       string // "down", "negotiating", "up"
	Peer        netip.AddrPort
	QuickMode   string // state of the quick mode in progress, if any
	Transform   transform.Transform
	PFSGroup    int
	InboundSPI  uint32
	OutboundSPI uint32
	UDPEncap    bool
	Lifetime    Lifetime      // the negotiated lifetime in force
	TimeLeft    time.Duration // until the hard lifetime
	Rekeys      int
	LastError   string // why the last negotiation failed
}

// Counters count what the daemon received, refused and did.
type Counters struct {
	Received            uint64 // datagrams given to Receive
	Malformed           uint64 // refused: did not parse
	UnknownSA           uint64 // refused: no IKE SA or exchange for the cookies
	Duplicates          uint64 // retransmitted requests answered again
	Dropped             uint64 // refused for other reasons (queue full, wrong state)
	AuthFailed          uint64 // peers that failed authentication
	NoProposalChosen    uint64 // negotiations without a common proposal
	Retransmits         uint64 // messages sent again after a timeout
	Phase1Established   uint64
	QuickModesCompleted uint64
	Rekeys              uint64
	NotifiesReceived    uint64
	DeletesReceived     uint64
}
