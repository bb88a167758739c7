package checkpoint

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// MaxReplayWindow is the largest anti-replay window a record may carry, as
// the offload engine allows.
const MaxReplayWindow = 1 << 16

// Record limits: larger values are refused when a record is encoded or
// decoded.
const (
	MaxTunnelName   = 255
	MaxSAsPerRecord = 64
	MaxIKESAs       = 16
	MaxIKEData      = 1 << 16
)

// SA is one IPsec SA as a checkpoint keeps it. Its keys are an ipsec.Key,
// which never prints; a record is sealed before it is stored anywhere. The
// zero value is not a valid record. An SA is a plain value.
type SA struct {
	ID        ipsec.SAID
	Direction ipsec.Direction
	Transform transform.Transform
	Mode      ipsec.Mode
	// Src and Dst are the outer addresses: local and peer for an
	// outbound SA, peer and local for an inbound one (Dst is ID.Dst).
	Src, Dst netip.Addr
	// UDPEncap is ESP in UDP (RFC 3948) between SrcPort and DstPort.
	UDPEncap         bool
	SrcPort, DstPort uint16
	ESN              bool
	ReplayWindow     int
	Limits           ipsec.Limits
	// Used is the lifetime used when the checkpoint was taken.
	Used               ipsec.Lifetime
	CipherKey, AuthKey ipsec.Key
	// Seq is, for an outbound SA, the last sequence number handed out
	// when the checkpoint was taken.
	Seq uint64
	// Replay is an inbound SA's anti-replay state.
	Replay ipsec.ReplayState
	// Rate is the packets per second the SA was seen to carry (outbound:
	// sequence numbers per second), the peak decayed by half a period.
	Rate float64
}

// String describes the SA without its keys.
func (s *SA) String() string {
	return fmt.Sprintf("%s %s %s %s seq %d", s.ID, s.Direction, s.Transform, s.Mode, s.Seq)
}

// Format prints String for every verb, so that %+v of a record never
// reaches the keys.
func (s *SA) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// Zero overwrites the SA's keys.
func (s *SA) Zero() {
	s.CipherKey.Zero()
	s.AuthKey.Zero()
}

// IKESA is an IKE SA (IKEv1 phase 1 or IKEv2) as its daemon exported it:
// opaque to this package, versioned by the exporter, secret as a whole
// (it holds SKEYID or SK_d and friends), so Data is an ipsec.Key.
type IKESA struct {
	// Version is the IKE version, 1 or 2.
	Version uint8
	// Format is the exporter's record format; an importer refuses one
	// it does not know.
	Format uint16
	Data   ipsec.Key
}

// Tunnel is what one tunnel needs to carry on: its SAs (both directions,
// and the old ones still in use during a rekey) and its IKE SAs.
type Tunnel struct {
	Name string
	SAs  []SA
	IKE  []IKESA
}

// Zero overwrites every key and IKE record of the tunnel.
func (t *Tunnel) Zero() {
	for i := range t.SAs {
		t.SAs[i].Zero()
	}
	for i := range t.IKE {
		t.IKE[i].Data.Zero()
	}
}

// State is one checkpoint of a gateway (or of a cluster's tunnel group):
// when it was taken, the schedule it was taken on, and its tunnels.
type State struct {
	// Written is when the checkpoint was taken.
	Written time.Time
	// Period is the checkpoint period in force, and WriteLatency the
	// longest recent write: what a resumed SA's margin must cover.
	Period       time.Duration
	WriteLatency time.Duration
	Tunnels      []Tunnel
}

// Zero overwrites every key of the state.
func (s *State) Zero() {
	for i := range s.Tunnels {
		s.Tunnels[i].Zero()
	}
}
