package ipsec

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ismgw/ism/transform"
)

// SAID names an SA: an SPI is unique per destination and protocol (RFC 4301
// §4.1). The destination is the peer for an outbound SA and the local
// endpoint for an inbound one. SAIDs are comparable and serve as map keys.
type SAID struct {
	Dst      netip.Addr
	SPI      uint32
	Protocol transform.Protocol
}

func (id SAID) String() string {
	return fmt.Sprintf("0x%08x/%s/%s", id.SPI, id.Protocol, id.Dst)
}

// Direction is the direction of an SA or of a crypto session: Outbound
// encrypts and computes the ICV, Inbound verifies the ICV and decrypts.
type Direction uint8

// Directions.
const (
	Outbound Direction = iota
	Inbound
)

func (d Direction) String() string {
	if d == Inbound {
		return "inbound"
	}
	return "outbound"
}

// Mode is the encapsulation mode (RFC 4301 §4.1).
type Mode uint8

// Modes.
const (
	Tunnel    Mode = iota // a new outer IP header
	Transport             // the original header is kept
)

func (m Mode) String() string {
	if m == Transport {
		return "transport"
	}
	return "tunnel"
}

// Lifetime is a limit by age and by volume; a zero field is no limit.
type Lifetime struct {
	Time    time.Duration
	Bytes   uint64
	Packets uint64
}

// IsZero reports whether the lifetime sets no limit at all.
func (l Lifetime) IsZero() bool { return l == Lifetime{} }

// The bounds of a user SA's lifetime: those the configuration accepts
// ("ipsec lifetime", "tunnel lifetime"), and those IKE holds a peer's
// proposal to. A shorter lifetime would have an SA renegotiated before it
// carried anything; a longer one is never in force, since ISM's own
// lifetime, within the bounds, is the lesser.
const (
	MinLifetime      = 30 * time.Second
	MaxLifetime      = 864000 * time.Second // ten days
	MinLifetimeBytes = 1024                 // a kilobyte
	MaxLifetimeBytes = (1<<32 - 1) * 1024
)

// The bounds of an IKE SA's lifetime: those the configuration accepts (an
// IKE policy rule's "lifetime seconds"), and those a peer's proposal is
// held to.
const (
	MinIKELifetime = 60 * time.Second
	MaxIKELifetime = 864000 * time.Second
)

// ErrLifetimeTooShort: a lifetime below MinLifetime or MinLifetimeBytes.
var ErrLifetimeTooShort = errors.New("lifetime too short")

// CheckMinimum returns an error wrapping ErrLifetimeTooShort when a
// dimension the lifetime sets (a peer's proposal) is below its minimum:
// MinLifetime or MinLifetimeBytes, or own's when this end's own lifetime
// is shorter still (which no configuration can set; tests do).
func (l Lifetime) CheckMinimum(own Lifetime) error {
	minTime, minBytes := MinLifetime, uint64(MinLifetimeBytes)
	if own.Time > 0 {
		minTime = min(minTime, own.Time)
	}
	if own.Bytes > 0 {
		minBytes = min(minBytes, own.Bytes)
	}
	switch {
	case l.Time > 0 && l.Time < minTime:
		return fmt.Errorf("%w: %v, the minimum is %v", ErrLifetimeTooShort, l.Time, minTime)
	case l.Bytes > 0 && l.Bytes < minBytes:
		return fmt.Errorf("%w: %d bytes, the minimum is %d", ErrLifetimeTooShort, l.Bytes, minBytes)
	}
	return nil
}

// Limits are an SA's soft and hard lifetimes: crossing Soft asks for a
// rekey; crossing Hard makes the SA unusable once the packet that crossed
// it is done.
type Limits struct {
	Soft, Hard Lifetime
}
