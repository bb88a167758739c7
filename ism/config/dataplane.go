package config

import "strings"

// MaxWorkers is the most lanes `dataplane workers` gives each pipeline.
const MaxWorkers = 128

// Dataplane holds the settings of the lookaside datapath's packet
// processing ("dataplane ...").
type Dataplane struct {
	// Workers is the number of lanes of each pipeline (a secure-interface
	// device's send side, a transport socket's receive side); 0 is auto,
	// one per CPU the Go runtime uses (GOMAXPROCS).
	Workers int
	// RawTransport is how raw ESP and AH are sent and received.
	RawTransport RawTransport
	// UDPSockets is how the UDP sockets of IKE and ESP in UDP are opened.
	UDPSockets UDPSockets
}

// UDPSockets is the choice of UDP sockets for the tunnel sources of a VR.
type UDPSockets string

// UDP socket choices.
const (
	// UDPWildcard shares one socket per port and address family in each
	// transport VR among its tunnel sources.
	UDPWildcard UDPSockets = "wildcard"
	// UDPPerAddress binds sockets to each tunnel source.
	UDPPerAddress UDPSockets = "per-address"
)

// RawTransport is the choice of transport for raw ESP and AH.
type RawTransport string

// Raw transports.
const (
	// RawAuto uses an AF_XDP ring on the transport interface where its
	// probe succeeds, raw sockets elsewhere.
	RawAuto RawTransport = "auto"
	// RawRing asks for the ring: where it cannot run, raw sockets carry
	// the tunnel and the fallback is counted and logged as a warning.
	RawRing RawTransport = "ring"
	// RawSocket uses raw IP sockets only.
	RawSocket RawTransport = "socket"
)

type dataplaneDraft struct {
	workers opt[int]
	raw     opt[RawTransport]
	udp     opt[UDPSockets]
}

func (p *parser) cmdDataplaneWorkers(c *cmdCtx) {
	if strings.EqualFold(c.arg(0), "auto") {
		p.d.g.dataplane.workers.put(0, c.line)
		return
	}
	if !isDigits(c.arg(0)) {
		c.errf("expected auto or a number of workers from 1 to %d, got %q", MaxWorkers, c.arg(0))
		return
	}
	if n, ok := c.number(0, "workers", 1, MaxWorkers); ok {
		p.d.g.dataplane.workers.put(int(n), c.line)
	}
}

func (p *parser) cmdDataplaneRaw(c *cmdCtx) {
	if k, ok := c.keyword(0, string(RawAuto), string(RawRing), string(RawSocket)); ok {
		p.d.g.dataplane.raw.put(RawTransport(k), c.line)
	}
}

func (p *parser) cmdDataplaneUDP(c *cmdCtx) {
	if k, ok := c.keyword(0, string(UDPWildcard), string(UDPPerAddress)); ok {
		p.d.g.dataplane.udp.put(UDPSockets(k), c.line)
	}
}

func (d dataplaneDraft) resolve() Dataplane {
	return Dataplane{Workers: d.workers.or(0), RawTransport: d.raw.or(RawSocket), UDPSockets: d.udp.or(UDPWildcard)}
}
