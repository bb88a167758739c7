package ike

import (
	"net/netip"
	"reflect"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// TunnelStatuser is a Daemon that can describe one tunnel without
// describing them all: `show ipsec tunnel NAME` costs that tunnel's
// status, not every tunnel's.
type TunnelStatuser interface {
	// TunnelStatus returns the tunnel's status and that of the IKE SAs
	// with its peer, or false for a tunnel the daemon does not run.
	TunnelStatus(name string) (TunnelStatus, []IKESAStatus, bool)
}

// Status is a snapshot of the daemon for show commands. It never holds key
// material.
type Status struct {
	IKESAs   []IKESAStatus
	Tunnels  []TunnelStatus
	Counters Counters
	// ByVersion holds, from a daemon that runs more than one IKE version
	// (ike/mux), each version's counters, by version number; Counters is
	// then their sum. Nil from a daemon of one version.
	ByVersion map[int]Counters
}

// IKESAStatus describes one IKE SA (`show ike sa`).
type IKESAStatus struct {
	// Version is the IKE version: 1 (zero means 1) or 2.
	Version       int
	Local, Remote netip.AddrPort
	// ICookie and RCookie are the initiator's and responder's cookies
	// (IKEv1) or IKE SA SPIs (IKEv2), in hex.
	ICookie, RCookie string
	Initiator        bool
	Mode             Phase1Mode
	State            string // e.g. "MM_KEY_I", "established"
	Established      bool
	Policy           Policy // the negotiated rule (lifetime: the one in force)
	RemoteID         string
	NATT             bool          // floated to UDP 4500
	LocalNAT         bool          // IKEv2: this end is behind a NAT (it sends keepalives)
	RemoteNAT        bool          // IKEv2: the peer is behind a NAT (this end follows its port)
	LastHeard        time.Time     // IKEv2: the last authenticated message from the peer
	LifetimeLeft     time.Duration // zero until established
	Rekeys           int           // phase 1 renegotiations (IKEv2: IKE SA rekeys, RFC 7296 §2.8) that led to it
	// Cookies is, for IKEv2, the COOKIE notifies of its setup (RFC 7296
	// §2.6): those received as initiator; 1 as responder when the
	// IKE_SA_INIT request carried a valid cookie.
	Cookies int
	// AdditionalKE are, for IKEv2, the additional key exchanges of RFC
	// 9370 the IKE SA's keys come from besides Policy.Group, in order:
	// method numbers (ike.LookupMethod). Empty when none was negotiated
	// (a peer without them, or a policy with optional ones fell back).
	AdditionalKE []int
	DPD          bool // this end announced DPD (RFC 3706)
	PeerDPD      bool // the peer announced DPD: inquiries may be sent
}

// TunnelStatus describes one signaled tunnel (`show ipsec tunnel detail`).
// State and the fields from Transform to TimeLeft describe its newest
// child SA; Children lists them all.
type TunnelStatus struct {
	Name string
	// Version is the IKE version the tunnel negotiates with: 1 (zero
	// means 1) or 2.
	Version int
	// State is that of its child SAs (phase 2): "up" with one at least,
	// "negotiating" while this end negotiates the first, else "down".
	State     string
	Peer      netip.AddrPort
	QuickMode string // state of the quick mode in progress, if any
	// IKESA is the state of the IKE SA (phase 1) with the tunnel's peer,
	// as `show ike sa` has it: "established", the state of one being
	// negotiated ("MM_KEY_I", "IKE_AUTH sent"), or "none".
	IKESA string
	// Children are the tunnel's child SA pairs (IKEv1 phase 2 SAs,
	// IKEv2 CHILD_SAs), oldest first.
	Children []ChildStatus
	// Negotiations are the selector pairs this end negotiates, or waits
	// to negotiate again after failures (the back-off).
	Negotiations []NegotiationStatus
	// Attempts and Failures count the negotiations of child SAs this end
	// started for the tunnel, and those that failed.
	Attempts, Failures int
	// Waiting says, of a tunnel with no child SA and none being
	// negotiated, what starts one: "traffic", or "the peer" when its
	// destination is known only by its identity.
	Waiting     string
	Transform   transform.Transform
	PFSGroup    int
	InboundSPI  uint32
	OutboundSPI uint32
	UDPEncap    bool
	Lifetime    ipsec.Lifetime // the negotiated lifetime in force
	TimeLeft    time.Duration  // until the hard lifetime
	Rekeys      int
	LastError   string // why the last negotiation failed
	// Destination is the destination in use: the tunnel's destination,
	// or its backup after a failover.
	Destination netip.Addr
	DPD         TunnelDPD
	Failover    TunnelFailover
}

// ChildStatus describes a child SA pair: an inbound and an outbound SA
// negotiated together, with their selectors.
type ChildStatus struct {
	Local, Remote           selector.Set
	InboundSPI, OutboundSPI uint32
	Transform               transform.Transform
	PFSGroup                int
	UDPEncap                bool
	Lifetime                ipsec.Lifetime // the negotiated lifetime in force
	TimeLeft                time.Duration  // until the hard lifetime
	Initiator               bool           // this end negotiated it
	Rekeying                bool           // a rekey of it is under way
}

// NegotiationStatus is a selector pair this end negotiates a child SA
// for, or waits to negotiate again: an acquire's, or the rekey of the
// child SA with these selectors.
type NegotiationStatus struct {
	Local, Remote selector.Set
	Rekey         bool
	// State is "negotiating" (and the exchange's state, if known) or
	// "backing off".
	State              string
	Attempts, Failures int
	LastError          string
	// NextAttempt is the earliest time of the next attempt (an
	// acquire's waits for traffic too); zero when one is under way.
	NextAttempt time.Time
}

// TunnelDPD is a tunnel's dead peer detection state, for the destination
// in use. Times are zero when unknown.
type TunnelDPD struct {
	Enabled bool
	// PeerSupports: the peer announced DPD on the IKE SA in use.
	PeerSupports bool
	// LastSent is when the tunnels' user SAs to the destination last
	// carried a packet; LastReceived when a packet last arrived on them
	// or an authenticated IKE message came from the peer, as DPD last
	// looked.
	LastSent, LastReceived time.Time
	// Outstanding counts the R-U-THERE inquiries not answered yet.
	Outstanding int
	// LastSequence is the sequence number of the last R-U-THERE sent.
	LastSequence uint32
	// DeadAt is when DPD last declared a destination of the tunnel dead,
	// DeadPeer which one.
	DeadAt   time.Time
	DeadPeer netip.Addr
}

// TunnelFailover is a tunnel's failover history.
type TunnelFailover struct {
	Backup   netip.Addr // the configured backup destination
	OnBackup bool       // the backup is the destination in use
	Count    int        // switches so far
	// The last switch: from where to where, why and when.
	LastFrom, LastTo netip.Addr
	LastReason       string
	LastAt           time.Time
	// LastDuration is the time from the last packet received from the old
	// destination to new SAs installed with the new one; zero while
	// InProgress.
	LastDuration time.Duration
	InProgress   bool
	// HoldDownUntil: no switch happens before this time. Pending: a
	// switch waits for it.
	HoldDownUntil time.Time
	Pending       bool
}

// Counters count what the daemon received, refused and did.
type Counters struct {
	Received            uint64 // datagrams given to Receive
	Malformed           uint64 // refused: did not parse
	UnknownSA           uint64 // refused: no IKE SA or exchange for the cookies
	Duplicates          uint64 // retransmitted requests answered again
	OutOfWindow         uint64 // IKEv2: requests and responses outside the message ID window (RFC 7296 §2.3)
	InvalidKE           uint64 // IKEv2: INVALID_KE_PAYLOAD sent or received (a retry with another group)
	Dropped             uint64 // refused for other reasons (queue full, wrong state)
	AuthFailed          uint64 // peers that failed authentication
	NoProposalChosen    uint64 // negotiations without a common proposal
	Retransmits         uint64 // messages sent again after a timeout
	Phase1Established   uint64
	QuickModesCompleted uint64 // IKEv1 quick modes; IKEv2 child SAs created
	Rekeys              uint64
	NotifiesReceived    uint64
	DeletesReceived     uint64
	DPDInquiries        uint64 // R-U-THERE sent (IKEv2: liveness checks sent)
	DPDAcks             uint64 // R-U-THERE-ACK received for an inquiry (IKEv2: liveness checks answered)
	DPDAnswered         uint64 // R-U-THERE received and answered (IKEv2: empty INFORMATIONAL answered)
	DPDPeersDead        uint64 // peers declared dead
	Failovers           uint64 // tunnel switches between destinations
	// IKEv2 fragmentation (RFC 7383): fragments sent and received, and
	// received fragments dropped (malformed, over a limit, stale).
	FragmentsSent, FragmentsReceived, FragmentsDropped uint64

	// IKEv2 (RFC 7296).
	IKESARekeys           uint64 // IKE SAs rekeyed (§2.8), either side starting
	RekeyCollisions       uint64 // simultaneous rekeys of a child or IKE SA resolved by the nonces (§2.8.1, §2.8.2)
	TemporaryFailures     uint64 // TEMPORARY_FAILURE sent or received (§2.25)
	CookiesSent           uint64 // IKE_SA_INIT answered with a COOKIE, keeping no state (§2.6)
	CookiesReceived       uint64 // COOKIE requests received as initiator (and retried with the cookie)
	CookiesRefused        uint64 // IKE_SA_INIT requests with a wrong or stale cookie
	InvalidIKESPISent     uint64 // INVALID_IKE_SPI notifies sent for unknown IKE SPIs (§2.21.4)
	InvalidIKESPILimited  uint64 // INVALID_IKE_SPI notifies not sent: rate limit
	IntermediateExchanges uint64 // IKE_INTERMEDIATE exchanges completed, either role (RFC 9242)
	FollowupKEExchanges   uint64 // IKE_FOLLOWUP_KE exchanges completed, either role (RFC 9370 §2.2.4)
}

// Add adds o's counts to c, field by field.
func (c *Counters) Add(o Counters) {
	cv, ov := reflect.ValueOf(c).Elem(), reflect.ValueOf(o)
	for i := range cv.NumField() {
		f := cv.Field(i)
		f.SetUint(f.Uint() + ov.Field(i).Uint())
	}
}
