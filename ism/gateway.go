// Package ism is the line card of the IPSec Service Module: the gateway
// owns the virtual routers and the secure tunnels with their interfaces,
// applies and reloads the configuration, and is the IKE daemon's seam with
// the datapaths (ism/datapath) that carry the tunnels' packets.
package ism

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/mux"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/ikeconf"
	"github.com/ismgw/ism/ism/lookaside"
	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/ism/trap"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/ism/xfrm"
)

// Options configure a Gateway beyond its configuration file.
type Options struct {
	Logger *slog.Logger
	// Drivers are the accelerators to offer the lookaside datapath, in
	// order of preference; nil means probe the registered drivers as the
	// configuration's "ipsec driver" says.
	Drivers []driver.Driver
	// NoXFRM keeps every tunnel on the lookaside datapath whatever the
	// kernel offers, as if its driver were never kernel protocol offload:
	// for tests and benchmarks of ISM's own data path on any host.
	NoXFRM bool
	// Clock runs the gateway's timers and IKE's; nil is clock.Real.
	Clock clock.Clock
	// IKE makes the daemon that negotiates the signaled tunnels' SAs; nil
	// is NewIKE.
	IKE func(ike.Config, ike.Installer, ike.Transport, ike.Listener) (ike.Daemon, error)
	// Timers shorten the gateway's own timers, for tests; zero fields
	// keep the defaults.
	Timers Timers
	// Resume is the checkpoint the tunnels resume from (a restart); nil
	// starts every SA afresh.
	Resume *Resume
}

// Timers are the gateway's own timers.
type Timers struct {
	// PathCheck is how often each tunnel's destination is looked up
	// again in its transport VR (5 s).
	PathCheck time.Duration
	// DeadRetry is how often a signaled tunnel whose peer DPD declared
	// dead, with no backup to fail over to, tries the peer again (30 s).
	DeadRetry time.Duration
}

// NewIKE is the IKE daemon of Options.IKE's default: IKEv1 and IKEv2 side
// by side (ike/mux), each tunnel negotiating with its ike-version.
func NewIKE(c ike.Config, in ike.Installer, tr ike.Transport, l ike.Listener) (ike.Daemon, error) {
	return mux.NewDaemon(c, in, tr, l)
}

// acquireEvery limits how often the data path asks IKE to negotiate for a
// tunnel that has no SA.
const acquireEvery = 250 * time.Millisecond

// Gateway is the ISM line card. Its methods are safe for concurrent use;
// the zero value is not usable (New).
type Gateway struct {
	log     *slog.Logger
	clock   clock.Clock
	timers  Timers
	started time.Time
	newIKE  func(ike.Config, ike.Installer, ike.Transport, ike.Listener) (ike.Daemon, error)

	// dps are the datapaths in order of preference; the last, lookaside,
	// takes every tunnel.
	dps       []datapath.Datapath
	look      *lookaside.Datapath
	eps       *transport.Endpoints
	fallbacks map[string]*atomic.Uint64 // by datapath: "xfrm-unavailable", "xfrm-fault"
	seam      *seam

	mu  sync.Mutex // the control plane: configuration, VRs, tunnels, routes
	cfg *config.Config
	// applying is the configuration apply is making real.
	applying *config.Config
	vrs      map[string]*vr.VR
	tunnels  map[string]*Tunnel
	byName   atomic.Pointer[map[string]*Tunnel]
	// groups are the cluster's tunnel groups (group.go), vips their
	// VIPs for fencedAddr; pending is what the tunnels being built
	// resume from.
	groups  map[string]*group
	vips    atomic.Pointer[map[netip.Addr]*group]
	pending *resumeSet

	// ike negotiates the signaled tunnels' SAs; nil until one is
	// configured.
	ike atomic.Pointer[daemon]
	// traps sends the SNMP traps; nil (which sends nothing) without
	// receivers. snmp is the configuration it was made from.
	traps atomic.Pointer[trap.Sender]
	snmp  config.SNMP

	jobs jobs
	// acquires is the acquirer goroutine's queue (seam.Acquire).
	acquires jobs
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the control and acquirer goroutines and the path timer
	paths    clock.Timer    // the path check; guarded by jobs.mu
	closing  atomic.Bool
}

// daemon holds the IKE daemon for an atomic pointer.
type daemon struct{ ike.Daemon }

// New builds a gateway from a validated configuration and starts it: VRs,
// secure interfaces, sockets, manual SAs, routes and the data path.
func New(cfg *config.Config, o Options) (*Gateway, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{log: log, clock: clock.Or(o.Clock), timers: o.Timers, newIKE: o.IKE, vrs: map[string]*vr.VR{},
		tunnels: map[string]*Tunnel{}, fallbacks: map[string]*atomic.Uint64{}}
	g.started = g.clock.Now()
	if g.newIKE == nil {
		g.newIKE = NewIKE
	}
	if g.timers.PathCheck <= 0 {
		g.timers.PathCheck = 5 * time.Second
	}
	if g.timers.DeadRetry <= 0 {
		g.timers.DeadRetry = 30 * time.Second
	}
	g.seam = newSeam(g)
	g.byName.Store(&map[string]*Tunnel{})
	drivers := o.Drivers
	if drivers == nil {
		drivers = probeDrivers(cfg, log)
	}
	var err error
	g.look, err = lookaside.New(lookaside.Config{Drivers: drivers, Events: g.seam, Clock: g.clock, Logger: log})
	if err != nil {
		return nil, err
	}
	x := xfrm.New(xfrm.Config{Events: g.seam, Logger: log, Off: o.NoXFRM})
	g.dps = []datapath.Datapath{x, g.look}
	for _, dp := range g.dps[:len(g.dps)-1] {
		for _, why := range []string{"unavailable", "fault"} {
			g.fallbacks[dp.Name()+"-"+why] = new(atomic.Uint64)
		}
	}
	g.eps = transport.NewEndpoints(endpointHandler{g.look, g}, log)
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.jobs.init()
	g.acquires.init()
	g.mu.Lock()
	if r := o.Resume; r != nil && r.State != nil {
		written := r.State.Written
		g.pending = newResumeSet(r.State.Tunnels, func(string) time.Time { return written }, checkpoint.PolicyOf(r.State))
	}
	err = g.apply(cfg)
	pend := g.pending
	g.pending = nil
	g.mu.Unlock()
	if err != nil {
		pend.zero()
		g.Close()
		return nil, err
	}
	g.resumeSignaled(pend)
	pend.zero()
	g.wg.Add(2)
	go g.control()
	go g.acquirer()
	g.armPathCheck()
	return g, nil
}

// endpointHandler hands what the transport endpoints receive to IKE and to
// the lookaside datapath, the one that carries ESP in user space.
type endpointHandler struct {
	*lookaside.Datapath
	g *Gateway
}

// IKE hands an IKE datagram to the IKE daemon, which copies it.
func (h endpointHandler) IKE(local, remote netip.AddrPort, msg []byte) {
	if d := h.g.daemon(); d != nil {
		d.Receive(local, remote, msg)
	}
}

// daemon returns the IKE daemon, or nil.
func (g *Gateway) daemon() ike.Daemon {
	if d := g.ike.Load(); d != nil {
		return d.Daemon
	}
	return nil
}

// probeDrivers opens the lookaside accelerators the configuration asks
// for, globally or for a tunnel: in the order auto prefers them, a DPDK
// device, then the kernel crypto API (AF_ALG). XFRM protocol offload,
// preferred before both, is a datapath of its own.
func probeDrivers(cfg *config.Config, log *slog.Logger) []driver.Driver {
	wanted := map[config.Driver]bool{cfg.Driver: true}
	for _, tc := range cfg.Tunnels {
		wanted[tc.Driver] = true
	}
	params := map[string]string{}
	if len(cfg.DPDK.EALArgs) > 0 {
		params["eal"] = strings.Join(cfg.DPDK.EALArgs, " ")
	}
	if len(cfg.DPDK.VDevs) > 0 {
		params["vdev"] = strings.Join(cfg.DPDK.VDevs, ",")
	}
	var out []driver.Driver
	for _, name := range []config.Driver{config.DriverDPDK, config.DriverKernel} {
		if !wanted[config.DriverAuto] && !wanted[name] {
			continue
		}
		d, err := driver.Open(string(name), driver.Config{Params: params, Logger: log})
		if err != nil {
			log.Info("driver not used", "driver", string(name), "reason", err)
			continue
		}
		log.Info("driver available", "driver", string(name), "info", d.Info().Features.String())
		out = append(out, d)
	}
	return out
}

// Close stops IKE, the data path and the gateway's goroutines and timers,
// deletes every SA (zeroing its keys) and removes the devices, routes,
// rules and sockets the gateway made. Nothing the gateway started runs
// after it returns.
func (g *Gateway) Close() {
	if g.closing.Swap(true) {
		return
	}
	g.stopControl()
	// IKE goes first: it tells the peers, over sockets still open.
	if d := g.daemon(); d != nil {
		d.Close()
	}
	// The data path stops: the endpoints' read loops, then the
	// datapaths' own, which close their paths (deleting the SAs).
	g.eps.Close()
	for _, dp := range g.dps {
		dp.Close()
	}
	g.mu.Lock()
	for name, t := range g.tunnels {
		g.teardown(t)
		delete(g.tunnels, name)
	}
	g.syncRoutes()
	for name, v := range g.vrs {
		v.Close()
		delete(g.vrs, name)
	}
	g.mu.Unlock()
	g.traps.Load().Close()
}

// Reload applies a new configuration: changed tunnels are rebuilt,
// untouched ones keep their SAs and counters (a changed transform set
// affects only future negotiations, as the seed says).
func (g *Gateway) Reload(cfg *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.apply(cfg)
}

// changeState sets a tunnel up or down and, when that is a change, says so:
// a log line and an SNMP trap (tunnel up, tunnel down with the reason).
func (g *Gateway) changeState(t *Tunnel, up bool, reason string) bool {
	if !t.setState(g.clock, up, reason) {
		return false
	}
	dest := t.destination()
	if up {
		g.traps.Load().TunnelUp(t.String(), dest)
	} else {
		g.traps.Load().TunnelDown(t.String(), dest, reason)
	}
	return true
}

// configureTraps makes the SNMP trap sender for the configuration, in the
// daemon's own namespace, replacing the old one when the settings changed.
func (g *Gateway) configureTraps(c config.SNMP) error {
	old := g.traps.Load()
	if old != nil && reflect.DeepEqual(c, g.snmp) {
		return nil
	}
	var s *trap.Sender
	if len(c.Hosts) > 0 {
		var err error
		if s, err = trap.New(c, g.log.With("component", "snmp")); err != nil {
			return err
		}
	}
	g.traps.Store(s)
	g.snmp = c
	old.Close()
	return nil
}

// configureIKE starts the IKE daemon for the signaled tunnels, or gives it
// the new configuration. Called with g.mu held.
func (g *Gateway) configureIKE(cfg *config.Config) error {
	signaled := false
	for _, t := range cfg.Tunnels {
		signaled = signaled || t.Type == config.Signaled
	}
	d := g.daemon()
	if !signaled && d == nil {
		return nil
	}
	ic, err := ikeconf.Build(cfg, g.log.With("component", "ike"), g.clock)
	if err != nil {
		return err
	}
	if d != nil {
		return d.Reconfigure(ic)
	}
	if d, err = g.newIKE(ic, g.seam, g.seam, g.seam); err != nil {
		return err
	}
	g.ike.Store(&daemon{d})
	return nil
}

var errClosed = errors.New("ism: gateway closed")
