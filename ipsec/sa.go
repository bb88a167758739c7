package ipsec

import (
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

// Limits are an SA's soft and hard lifetimes: crossing Soft asks for a
// rekey; crossing Hard makes the SA unusable once the packet that crossed
// it is done.
type Limits struct {
	Soft, Hard Lifetime
}
