package offload

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// SAConfig is what an SA is made from.
type SAConfig struct {
	SPI       uint32
	Direction ipsec.Direction
	Mode      ipsec.Mode
	Transform transform.Transform
	// Src and Dst are the outer addresses: local and peer for an outbound
	// SA, peer and local for an inbound one.
	Src, Dst netip.Addr
	// UDPEncap puts ESP in UDP (RFC 3948); the ports default to 4500.
	UDPEncap         bool
	SrcPort, DstPort uint16
	// Framing is where the SA's outbound packets start when Encap hands
	// them out: the whole outer IP packet, or the ESP header for a UDP
	// socket that writes the IP and UDP headers itself (SA.Outer says
	// where they go).
	Framing   Framing
	ESN       bool
	CipherKey ipsec.Key
	AuthKey   ipsec.Key
	// ReplayWindow is the inbound anti-replay window in packets; 0 turns
	// the check off. Use DefaultReplayWindow unless configured.
	ReplayWindow int
	Limits       ipsec.Limits
	// Driver names the driver wanted ("" or "auto": the best available).
	Driver string
	// Cookie is the owner's reference (its tunnel); offload never reads it.
	Cookie uint64
}

// Framing is where the packets of an SA start as Encap hands them out; see
// Packet.Outer for Decap.
type Framing uint8

// Framings.
const (
	// FrameIP is the whole outer IP packet, as a raw IP socket with
	// IP_HDRINCL sends it: the engine writes the outer IP header (tunnel
	// mode) and, for ESP in UDP, the UDP header.
	FrameIP Framing = iota
	// FrameESP starts at the ESP header of ESP in UDP (RFC 3948), for a
	// UDP socket that writes the outer IP and UDP headers itself; in
	// transport mode the original IP header is taken off, the socket
	// writing its own. SA.Outer says where the packets go; received
	// ones come with Packet.Outer.
	FrameESP
)

// ID returns the SA's identity.
func (c *SAConfig) ID() ipsec.SAID {
	return ipsec.SAID{SPI: c.SPI, Protocol: c.Transform.Protocol, Dst: c.Dst}
}

// SA state bits.
const (
	stateSoft     = 1 << iota // soft limit crossed, rekey wanted
	stateHard                 // hard limit crossed: unusable
	stateOverflow             // outbound sequence number exhausted: unusable
	stateDeleted
)

// SA is one security association in one direction. It is safe for concurrent
// use. Its keys are held until Delete zeroes them; no method prints them.
type SA struct {
	cfg SAConfig // its identity too (ID): not kept twice

	seq   atomic.Uint64 // outbound: last sequence number used
	state atomic.Uint32
	// tmplSum is the one's complement sum of tmpl's constant IPv4 header
	// words, so that the per-packet checksum is incremental.
	tmplSum uint32
	bind    atomic.Pointer[binding]
	stats   Counters
	used    atomic.Int64 // last packet, nanotime
	outer   int          // outer IP (+UDP) header bytes in tunnel mode
	// tmpl is the outer header of tunnel mode with every constant field
	// filled in.
	tmpl   [header.IPv6MinimumSize + header.UDPMinimumSize]byte
	ipv6   bool  // outer addresses are IPv6
	aged   bool  // softAt or hardAt is set
	softAt int64 // nanotime of soft/hard age expiry, 0: none
	hardAt int64
	born   int64 // nanotime of its creation

	mu       sync.Mutex // serialises replay updates; guards fallback
	replay   *replayWindow
	fallback *binding // lazily made software session for spill-over

	e *Engine

	shape
}

// shape is what the data path needs of the SA's transform and
// encapsulation, worked out once when the SA is added.
type shape struct {
	ivLen, icvLen, blockSize int
	ipLen, udpLen            int // tunnel mode's outer IP and UDP headers
	aead, encrypts, auths    bool
	esnICV                   bool // ESN high bits go under a non-AEAD ICV
	fromESP                  bool // FrameESP: no outer IP or UDP header
}

func shapeOf(c *SAConfig) shape {
	t := c.Transform
	s := shape{ivLen: t.IVLen(), icvLen: t.ICVLen(), blockSize: t.BlockSize(), aead: t.Cipher.AEAD(),
		encrypts: t.Encrypts(), auths: t.Authenticates(), ipLen: header.IPv4MinimumSize}
	s.esnICV = c.ESN && !s.aead && s.auths
	if c.Dst.Is6() {
		s.ipLen = header.IPv6MinimumSize
	}
	if c.UDPEncap {
		s.udpLen = header.UDPMinimumSize
	}
	if c.UDPEncap && c.Framing == FrameESP {
		s.ipLen, s.udpLen, s.fromESP = 0, 0, true
	}
	return s
}

// ID returns the SA's identity.
func (sa *SA) ID() ipsec.SAID { return sa.cfg.ID() }

// Config returns the SA's configuration without its keys.
func (sa *SA) Config() SAConfig {
	c := sa.cfg
	c.CipherKey, c.AuthKey = nil, nil
	return c
}

// Outer returns the SA's outer source and destination, with the UDP ports
// of ESP in UDP: where its outbound packets go.
func (sa *SA) Outer() Outer {
	c := &sa.cfg
	if !c.UDPEncap {
		return Outer{Src: netip.AddrPortFrom(c.Src, 0), Dst: netip.AddrPortFrom(c.Dst, 0)}
	}
	sp, dp := c.ports()
	return Outer{Src: netip.AddrPortFrom(c.Src, sp), Dst: netip.AddrPortFrom(c.Dst, dp)}
}

// Transform returns the SA's transform.
func (sa *SA) Transform() transform.Transform { return sa.cfg.Transform }

// Direction returns the SA's direction.
func (sa *SA) Direction() ipsec.Direction { return sa.cfg.Direction }

// Cookie returns the owner's reference given in the config.
func (sa *SA) Cookie() uint64 { return sa.cfg.Cookie }

// Counters returns the SA's traffic and drop counters.
func (sa *SA) Counters() *Counters { return &sa.stats }

// Seq returns the last outbound sequence number used, or for an inbound SA
// the highest one verified.
func (sa *SA) Seq() uint64 {
	if sa.cfg.Direction == ipsec.Outbound {
		return sa.seq.Load()
	}
	return sa.replay.top.Load()
}

// LastUsed returns when the SA last carried a packet (zero if never).
func (sa *SA) LastUsed() time.Time {
	n := sa.used.Load()
	if n == 0 {
		return time.Time{}
	}
	return epoch.Add(time.Duration(n))
}

// Created returns when the SA was added.
func (sa *SA) Created() time.Time { return epoch.Add(time.Duration(sa.born)) }

// Usable reports whether the SA can still carry packets.
func (sa *SA) Usable() bool {
	return sa.state.Load()&(stateHard|stateOverflow|stateDeleted) == 0
}

// State describes the SA's lifetime state: "active", "rekey-wanted",
// "expired", "sequence-exhausted" or "deleted".
func (sa *SA) State() string {
	s := sa.state.Load()
	switch {
	case s&stateDeleted != 0:
		return "deleted"
	case s&stateOverflow != 0:
		return "sequence-exhausted"
	case s&stateHard != 0:
		return "expired"
	case s&stateSoft != 0:
		return "rekey-wanted"
	}
	return "active"
}

// Driver returns the name of the driver the SA is bound to and why it was
// chosen.
func (sa *SA) Driver() (name, reason string) {
	b := sa.bind.Load()
	if b == nil {
		return "", ""
	}
	return b.drv.Name(), b.reason
}

// String describes the SA without its keys.
func (sa *SA) String() string {
	return fmt.Sprintf("SA %s %s %s %s %s->%s", sa.ID(), sa.cfg.Direction, sa.cfg.Transform, sa.cfg.Mode, sa.cfg.Src, sa.cfg.Dst)
}

// Format prints String for every verb, so that %v and %+v of an SA can
// never reach the keys.
func (sa *SA) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(sa.String())) }

// reserveSeq hands out n consecutive outbound sequence numbers, the first
// of which it returns, with how many of them may be used (RFC 4303
// §3.3.3): when the counter would wrap, the SA becomes unusable and says so,
// and the numbers past the last are refused.
func (sa *SA) reserveSeq(n int) (first uint64, granted int) {
	last := sa.seq.Add(uint64(n))
	first = last - uint64(n) + 1
	limit := uint64(1<<32 - 1)
	if sa.cfg.ESN {
		limit = 1<<64 - 1
	}
	switch {
	case last < first || first == 0: // wrapped past 2^64
		granted = 0
	case last > limit:
		granted = int(max(0, int64(limit-first+1)))
	default:
		granted = n
	}
	if granted < n || last == limit {
		sa.seq.Store(limit)
		if sa.setState(stateOverflow) {
			// The last number is used; the SA says so before the next one.
			sa.e.notify(Event{Kind: EventHardExpire, Cause: CauseSequence, SA: sa})
		}
	}
	return first, granted
}
