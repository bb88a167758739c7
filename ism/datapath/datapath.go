// Package datapath is the line card's contract with the paths its tunnels'
// packets take: a Datapath builds a Path for a tunnel, and the line card
// installs, deletes and queries the tunnel's SAs on that Path, whichever
// datapath it is. Two implement it: ism/lookaside (ISM's own: a TUN device
// per operational VR, the offload engine and transport sockets) and
// ism/xfrm (the kernel's XFRM protocol offload). A datapath reports SA
// lifetime events and the need for SAs through Events.
package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// Datapath carries the packets of tunnels. Its methods are safe for
// concurrent use.
type Datapath interface {
	// Name is the datapath's name in show output: "lookaside", "xfrm".
	Name() string
	// Supports says whether the datapath can carry t: nil, an error
	// wrapping ErrNotAsked when t's driver does not ask for it, or an
	// *Unsupported saying why not.
	Supports(t *Tunnel) error
	// Open builds t's path: its secure interface with its addresses, and
	// what its packets need. Nothing of it is left when Open fails.
	Open(t *Tunnel) (Path, error)
	// Stats returns what the datapath counted beyond its tunnels.
	Stats() Stats
	// ResetStats zeroes those counters.
	ResetStats()
	// Close stops the datapath's goroutines, closes the paths still open
	// and releases what it holds. Nothing it started runs after it returns.
	Close()
}

// Path is one tunnel on a datapath. Its methods are safe for concurrent
// use.
type Path interface {
	// AddSA installs an SA. It takes the keys and zeroes them. An error
	// wrapping ErrUnsupported means the datapath cannot carry the SA (the
	// tunnel should move); any other error is a fault.
	AddSA(sa *SA) error
	// DeleteSA removes an SA and zeroes its keys; what it carried stays
	// in the tunnel's counters. It fails with ErrNoSA for an SA the path
	// does not hold.
	DeleteSA(id ipsec.SAID) error
	// QuerySA returns what an SA carried.
	QuerySA(id ipsec.SAID) (Usage, error)
	// Link is where the tunnel's routes point in its operational VR.
	Link() vr.Link
	// Status describes the path for show commands.
	Status() Status
	// Close deletes the path's SAs (zeroing their keys), its interface
	// and addresses. It may be called more than once.
	Close()
}

// Holder is a Path that holds the packets which found no outbound SA of
// its signaled tunnel covering them, to send each on the SA that covers it
// once IKE installs one. The line card tells it when a negotiation failed:
// the held packets no SA covers are then dropped, counted as
// acquire-failed.
type Holder interface {
	DropHeld()
}

// Events is how a datapath tells the line card what happened. Calls come
// from the datapath's goroutines and must not block.
type Events interface {
	// Expired: an SA crossed its soft (rekey wanted) or hard lifetime;
	// after a hard one it carries nothing more.
	Expired(id ipsec.SAID, hard bool, cause string)
	// Acquire: outbound traffic of a tunnel from src to dst (the inner
	// addresses) found no SA.
	Acquire(t *Tunnel, src, dst netip.Addr)
}

// Errors of datapaths.
var (
	// ErrNotAsked: the tunnel's driver does not ask for the datapath.
	ErrNotAsked = errors.New("datapath: not asked for by the tunnel's driver")
	// ErrUnsupported: the datapath cannot carry the tunnel or SA.
	ErrUnsupported = errors.New("datapath: not supported")
	// ErrNoSA: the path holds no such SA.
	ErrNoSA = errors.New("datapath: no such SA")
)

// Unsupported is why a datapath cannot carry a tunnel. It wraps
// ErrUnsupported.
type Unsupported struct {
	// Reason is what show says, e.g. "xfrm protocol offload not used: ...".
	Reason string
	// Asked is set when the tunnel's driver asks for this datapath by
	// name, so that falling back is worth counting and a warning.
	Asked bool
}

func (u *Unsupported) Error() string { return u.Reason }

// Unwrap returns ErrUnsupported.
func (u *Unsupported) Unwrap() error { return ErrUnsupported }

// Tunnel is what a datapath knows of a tunnel. The line card fills in the
// configuration before Open and never changes it after; the state below
// it is shared, the line card writing and the datapath reading it.
type Tunnel struct {
	Name     string
	Signaled bool // IKE negotiates the SAs
	Mode     ipsec.Mode
	// Local and Remote are the selectors: only traffic inside them
	// crosses the tunnel, either way.
	Local, Remote selector.Selector
	// Source and Destination are the tunnel endpoints; Destination is
	// invalid when it is a name or negotiated. Backup is set when the
	// tunnel has a backup destination.
	Source, Destination netip.Addr
	Backup              bool
	// UDPPort is the port of ESP in UDP (RFC 3948); 0 is raw ESP or AH.
	UDPPort uint16
	// Addresses are the secure interface's addresses.
	Addresses []netip.Prefix
	// PolicyRoutes is set when source-based policy routes lead to the
	// tunnel.
	PolicyRoutes bool
	// Transforms are those the tunnel may use: a manual tunnel's SAs', a
	// signaled tunnel's set.
	Transforms   []transform.Transform
	Driver       string // the configured driver: auto, software, dpdk, kernel
	ReplayWindow int
	// Op and Transport are the operational and transport VRs; Endpoint
	// is the tunnel source's endpoint in the transport VR.
	Op, Transport *vr.VR
	Endpoint      *transport.Endpoint

	// Fence, when set, reports whether the tunnel may still send: a
	// cluster group's ownership is valid (cluster.Takeover.Valid). A
	// datapath that frames packets itself checks it before each burst
	// and drops the burst (tunnel-down) once it says no.
	Fence func() bool

	// Routed says the tunnel's routes are in: traffic reaching it is
	// carried (else counted as tunnel-down).
	Routed atomic.Bool
	// MTU is the largest inner packet the tunnel carries.
	MTU atomic.Int32
	// TX and RX count the tunnel's traffic and drops by direction, across
	// SAs and rekeys.
	TX, RX offload.Counters
}

// SA is an SA to install on a path.
type SA struct {
	ID        ipsec.SAID
	Direction ipsec.Direction
	Transform transform.Transform
	// Src is the outer source (ID.Dst is the destination).
	Src netip.Addr
	// UDPEncap puts ESP in UDP (RFC 3948) with the ports given.
	UDPEncap         bool
	SrcPort, DstPort uint16
	CipherKey        ipsec.Key // AEAD keys include the salt
	AuthKey          ipsec.Key
	// ESN: 64-bit extended sequence numbers.
	ESN bool
	// Limits are the SA's soft and hard lifetimes; zero for manual SAs.
	Limits ipsec.Limits
	// Local and Remote are the SA's own selectors when IKE negotiated
	// narrower ones than the tunnel's: the traffic it carries, of the
	// tunnel's. nil: the tunnel's. Of a tunnel's outbound SAs a packet
	// takes the narrowest whose selectors contain it (the newest of
	// equals: a rekey's); an inbound SA's packets must be inside its own.
	Local, Remote selector.Set
	// ReleaseDelay is, for an outbound SA, how long the packets a Holder
	// held for the negotiation wait once it is installed: an IKEv1 peer
	// installs its inbound SA only when it has the quick mode's last
	// message, sent just before (RFC 2409 §5.5; the commit bit that
	// would say when is rarely implemented).
	ReleaseDelay time.Duration
}

// Narrowed reports whether the SA has selectors of its own.
func (sa *SA) Narrowed() bool { return sa.Local != nil || sa.Remote != nil }

// Usage is what a path counted for an SA.
type Usage struct {
	Bytes, Packets uint64
	// LastUsed is when a packet last crossed the SA, zero if never.
	LastUsed time.Time
}

// Status is what show says of a path.
type Status struct {
	Datapath  string
	Interface string // the secure interface's device
	// Driver is where the crypto runs, and DriverReason why.
	Driver, DriverReason string
	// Reason says why the tunnel runs on this datapath, if it says.
	Reason string
	// Transport is how the outbound SA's packets leave: "af_xdp ring on
	// eth0 (native XDP)", "raw socket (why)", a UDP socket.
	Transport string
	SAs       []SAStatus
	// In and Out are traffic the path's live SAs carried that the
	// tunnel's counters do not hold yet (the kernel counts XFRM's).
	In, Out Traffic
}

// Traffic counts one direction.
type Traffic struct {
	Packets uint64            `json:"packets"`
	Bytes   uint64            `json:"bytes"`
	Drops   map[string]uint64 `json:"drops"`
}

// Add adds b to t.
func (t *Traffic) Add(b Traffic) {
	t.Packets += b.Packets
	t.Bytes += b.Bytes
	for k, v := range b.Drops {
		if t.Drops == nil {
			t.Drops = map[string]uint64{}
		}
		t.Drops[k] += v
	}
}

// TrafficOf reads counters.
func TrafficOf(c *offload.Counters) Traffic {
	v := c.Snapshot()
	return Traffic{Packets: v.Packets, Bytes: v.Bytes, Drops: v.DropMap()}
}

// LifetimeLeft describes what is left of an SA's hard lifetime, created at
// created and having carried bytes: "120s left, 4096 KB left", or "" when
// it has none.
func LifetimeLeft(hard ipsec.Lifetime, created time.Time, bytes uint64) string {
	var parts []string
	if hard.Time > 0 {
		parts = append(parts, fmt.Sprintf("%ds left", max(0, int((hard.Time-time.Since(created)).Seconds()))))
	}
	if hard.Bytes > 0 {
		parts = append(parts, fmt.Sprintf("%d KB left", (hard.Bytes-min(hard.Bytes, bytes))/1024))
	}
	return strings.Join(parts, ", ")
}

// SAStatus is what `show ipsec sa` shows of an SA: never its keys.
type SAStatus struct {
	Tunnel       string            `json:"tunnel"`
	Direction    string            `json:"direction"`
	SPI          string            `json:"spi"`
	Protocol     string            `json:"protocol"`
	Transform    string            `json:"transform"`
	Mode         string            `json:"mode"`
	Source       string            `json:"source"`
	Destination  string            `json:"destination"`
	UDPEncap     bool              `json:"udp_encapsulation"`
	State        string            `json:"state"`
	Driver       string            `json:"driver"`
	DriverReason string            `json:"driver_reason,omitempty"`
	Seq          uint64            `json:"sequence"`
	ESN          bool              `json:"esn"`
	ReplayWindow int               `json:"replay_window"`
	Packets      uint64            `json:"packets"`
	Bytes        uint64            `json:"bytes"`
	Drops        map[string]uint64 `json:"drops"`
	Created      time.Time         `json:"created"`
	LastUsed     time.Time         `json:"last_used,omitzero"`
	Lifetime     string            `json:"lifetime"`
	// Selectors are the SA's own, "LOCAL to REMOTE" (as its tunnel's
	// are said: this end's first), when narrower than the tunnel's.
	Selectors string `json:"selectors,omitempty"`
}

// SelectorsText says an SA's own selectors: "" when it has the tunnel's.
func SelectorsText(local, remote selector.Set) string {
	if local == nil && remote == nil {
		return ""
	}
	return local.String() + " to " + remote.String()
}

// Stats is what a datapath counted beyond its tunnels.
type Stats struct {
	// Engine is the traffic of the datapath's crypto engine.
	Engine Traffic
	// Drops are packets no tunnel could be charged with, by reason.
	Drops map[string]uint64
	// Drivers are the crypto drivers in use.
	Drivers []string
	// Buffers names the driver whose memory holds the packets, "" for Go
	// memory.
	Buffers string
	// Fallbacks count packets or tunnels that fell back to the software
	// engine, by reason.
	Fallbacks map[string]uint64
	// Workers is the number of lanes each of the datapath's pipelines
	// runs, and Pipelines how many run.
	Workers   int
	Pipelines Pipelines
}

// Pipelines counts a datapath's running pipelines by what they serve.
type Pipelines struct {
	Devices int `json:"devices"` // secure-interface devices' send sides
	Sockets int `json:"sockets"` // transport sockets' and rings' receive sides
	// Bursts counts the bursts the pipelines ran, Overlapped those that
	// began their crypto while another burst was in its own.
	Bursts     uint64 `json:"bursts"`
	Overlapped uint64 `json:"overlapped"`
	// Lanes is the most lanes that ran bursts in one pipeline.
	Lanes int `json:"lanes"`
	// BufferBytes is the Go memory the running pipelines' bursts hold in
	// packet buffers: it grows with the sockets, devices and lanes, not
	// with the tunnels.
	BufferBytes int64 `json:"buffer_bytes"`
	// ReceiveBufferBytes is the part of BufferBytes the sockets' and
	// rings' receive bursts hold: it follows each one's traffic.
	ReceiveBufferBytes int64 `json:"receive_buffer_bytes"`
}
