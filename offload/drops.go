package offload

import (
	"fmt"
	"sync/atomic"
)

// DropReason says why the data path dropped a packet. The zero value means
// the packet was not dropped.
type DropReason uint8

// Drop reasons. Each has a counter per SA and a global one.
const (
	NotDropped        DropReason = iota
	DropNoSA                     // no SA for (SPI, protocol, destination), or none on the tunnel
	DropMalformed                // truncated or inconsistent headers
	DropICV                      // the ICV did not verify
	DropReplay                   // sequence number already seen
	DropOutsideWindow            // sequence number left of the replay window
	DropBadPadding               // ESP padding or pad length wrong
	DropSeqOverflow              // outbound sequence number would wrap
	DropLifetime                 // the SA's hard lifetime has passed
	DropDriverFault              // the driver failed the op
	DropQueueFull                // no driver could take the op
	DropSelector                 // inner addresses outside the tunnel's selectors
	DropTooBig                   // too large for the buffer or path MTU
	DropUnsupported              // valid but not handled (e.g. IPv4 options under AH)
	DropDummy                    // ESP dummy packet, next header 59 (RFC 4303 §2.6)
	DropTunnelDown               // the tunnel is down
	DropNoRoute                  // no secure interface for the destination
	DropSendError                // the transport socket refused the packet
	DropDeliverError             // the secure-interface device refused the packet
	DropHoldOverflow             // held for an acquire (a negotiation), over the hold queue's bound
	DropHoldFailed               // held for an acquire whose negotiation failed or took too long
	numDropReasons
)

// NumDropReasons is the number of drop reasons, NotDropped included.
const NumDropReasons = int(numDropReasons)

var dropNames = [...]string{
	NotDropped:        "none",
	DropNoSA:          "no-sa",
	DropMalformed:     "malformed",
	DropICV:           "icv-failure",
	DropReplay:        "replay",
	DropOutsideWindow: "outside-window",
	DropBadPadding:    "bad-padding",
	DropSeqOverflow:   "sequence-overflow",
	DropLifetime:      "lifetime-expired",
	DropDriverFault:   "driver-fault",
	DropQueueFull:     "queue-full",
	DropSelector:      "selector-mismatch",
	DropTooBig:        "too-big",
	DropUnsupported:   "unsupported",
	DropDummy:         "dummy-packet",
	DropTunnelDown:    "tunnel-down",
	DropNoRoute:       "no-route",
	DropSendError:     "send-error",
	DropDeliverError:  "deliver-error",
	DropHoldOverflow:  "acquire-overflow",
	DropHoldFailed:    "acquire-failed",
}

func (r DropReason) String() string {
	if int(r) < len(dropNames) {
		return dropNames[r]
	}
	return fmt.Sprintf("drop-%d", uint8(r))
}

// DropReasons returns every reason but NotDropped, in order.
func DropReasons() []DropReason {
	out := make([]DropReason, 0, NumDropReasons-1)
	for r := DropReason(1); r < numDropReasons; r++ {
		out = append(out, r)
	}
	return out
}

// Counters counts traffic and drops. The zero value is ready; it is safe for
// concurrent use. The drops by reason are made at the first drop: most
// SAs and tunnels never drop, and they are many.
type Counters struct {
	Packets atomic.Uint64
	Bytes   atomic.Uint64
	drops   atomic.Pointer[dropCounts]
}

// dropCounts are the drops by reason.
type dropCounts [NumDropReasons]atomic.Uint64

// Drop counts one drop.
func (c *Counters) Drop(r DropReason) { c.DropN(r, 1) }

// DropN counts n drops for one reason.
func (c *Counters) DropN(r DropReason, n uint64) {
	d := c.drops.Load()
	if d == nil {
		c.drops.CompareAndSwap(nil, new(dropCounts))
		d = c.drops.Load()
	}
	d[r].Add(n)
}

// Drops returns the drops counted for one reason.
func (c *Counters) Drops(r DropReason) uint64 {
	if d := c.drops.Load(); d != nil {
		return d[r].Load()
	}
	return 0
}

// Snapshot returns the counters' values.
func (c *Counters) Snapshot() CounterValues {
	v := CounterValues{Packets: c.Packets.Load(), Bytes: c.Bytes.Load()}
	if d := c.drops.Load(); d != nil {
		for i := range d {
			v.Drops[i] = d[i].Load()
		}
	}
	return v
}

// Reset zeroes the counters.
func (c *Counters) Reset() {
	c.Packets.Store(0)
	c.Bytes.Store(0)
	if d := c.drops.Load(); d != nil {
		for i := range d {
			d[i].Store(0)
		}
	}
}

// CounterValues is a snapshot of Counters.
type CounterValues struct {
	Packets, Bytes uint64
	Drops          [NumDropReasons]uint64
}

// Dropped returns the total of all drops.
func (v *CounterValues) Dropped() uint64 {
	var n uint64
	for _, d := range v.Drops {
		n += d
	}
	return n
}

// Add adds w to v.
func (v *CounterValues) Add(w CounterValues) {
	v.Packets += w.Packets
	v.Bytes += w.Bytes
	for i := range v.Drops {
		v.Drops[i] += w.Drops[i]
	}
}

// DropMap returns the nonzero drops by reason name.
func (v *CounterValues) DropMap() map[string]uint64 {
	m := map[string]uint64{}
	for i, d := range v.Drops {
		if d != 0 {
			m[DropReason(i).String()] = d
		}
	}
	return m
}
