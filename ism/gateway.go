package ism

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	v1 "github.com/ismgw/ism/ike/v1"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/trap"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// pathCheckInterval is how often each tunnel's destination is looked up
// again in its transport VR.
const pathCheckInterval = 5 * time.Second

// Options configure a Gateway beyond its configuration file.
type Options struct {
	Logger *slog.Logger
	// Drivers are the accelerators to offer the dispatcher, in order of
	// preference; nil means probe the registered drivers as the
	// configuration's "ipsec driver" says.
	Drivers []driver.Driver
	// NoXFRM keeps every tunnel on the lookaside datapath whatever the
	// kernel offers, as if its driver were never kernel protocol offload:
	// for tests and benchmarks of ISM's own data path on any host.
	NoXFRM bool
}

// Gateway is the ISM line card: it owns the virtual routers, the secure
// tunnels and their interfaces, the SA database and the data path. Its
// methods are safe for concurrent use.
type Gateway struct {
	log     *slog.Logger
	fb      *fallback.Driver
	drivers []driver.Driver
	// pool is an accelerator's packet memory, when one has its own.
	pool    driver.BufferPool
	eng     *offload.Engine
	started time.Time

	// counters count what no tunnel can be charged with.
	counters offload.Counters
	// x is the XFRM protocol-offload datapath's state.
	x xfrmState

	mu  sync.Mutex // the control plane: configuration and tunnels
	cfg *config.Config
	// applying is the configuration apply is making real.
	applying *config.Config
	vrs      map[string]*vr
	tunnels  map[string]*Tunnel
	nextID   uint64
	byID     atomic.Pointer[map[uint64]*Tunnel]
	byName   atomic.Pointer[map[string]*Tunnel]

	// ike negotiates the signaled tunnels' SAs; nil until one is
	// configured. seam is how it reaches the gateway.
	ike  atomic.Pointer[v1.Daemon]
	seam *seam
	// traps sends the SNMP traps; nil (which sends nothing) without
	// receivers. snmp is the configuration it was made from.
	traps atomic.Pointer[trap.Sender]
	snmp  config.SNMP
	jobs  chan func() // control-plane work posted by other goroutines

	events  saEvents
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closing atomic.Bool
}

// New builds a gateway from a validated configuration and starts it: VRs,
// secure interfaces, sockets, manual SAs, routes and the data path.
func New(cfg *config.Config, o Options) (*Gateway, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{log: log, fb: fallback.New(0), vrs: map[string]*vr{}, tunnels: map[string]*Tunnel{}, started: time.Now(),
		jobs: make(chan func(), 256)}
	g.seam = &seam{g: g, reserved: map[ipsec.SAID]time.Time{}, socks: map[netip.AddrPort]*sock{}}
	g.byID.Store(&map[uint64]*Tunnel{})
	g.byName.Store(&map[string]*Tunnel{})
	g.x.off = o.NoXFRM
	g.drivers = o.Drivers
	if g.drivers == nil {
		g.drivers = probeDrivers(cfg, log)
	}
	for _, d := range g.drivers {
		if p, ok := d.(driver.BufferPool); ok && d.Info().Features&driver.FeatureBufferPool != 0 {
			g.pool = p
			log.Info("packet buffers from the driver's memory", "driver", d.Name())
			break
		}
	}
	var err error
	g.eng, err = offload.New(offload.Config{Fallback: g.fb, Drivers: g.drivers, Notify: g.events.post, Logger: log})
	if err != nil {
		return nil, err
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.mu.Lock()
	err = g.apply(cfg)
	g.mu.Unlock()
	if err != nil {
		g.Close()
		return nil, err
	}
	g.wg.Add(1)
	go g.control()
	return g, nil
}

// probeDrivers opens the lookaside accelerators the configuration asks
// for, globally or for a tunnel: in the order auto prefers them, a DPDK
// device, then the kernel crypto API (AF_ALG). XFRM protocol offload,
// preferred before both, is chosen per tunnel (chooseXFRM).
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

// Close stops the data path, deletes every SA (zeroing its keys) and
// removes the devices, routes, rules and sockets the gateway made.
func (g *Gateway) Close() {
	if g.closing.Swap(true) {
		return
	}
	// IKE goes first: it tells the peers, over sockets still open.
	if d := g.ike.Load(); d != nil {
		d.Close()
	}
	g.cancel()
	// 1. Stop the data path: close the devices and sockets the loops read,
	// and wait for the loops to end.
	g.mu.Lock()
	for _, v := range g.vrs {
		v.stopIO()
	}
	g.mu.Unlock()
	g.events.close()
	g.wg.Wait()
	// 2. Then take the tunnels apart, with nothing in flight.
	g.mu.Lock()
	for name, t := range g.tunnels {
		g.teardown(t)
		delete(g.tunnels, name)
	}
	g.syncRoutes()
	for name, v := range g.vrs {
		v.close()
		delete(g.vrs, name)
	}
	g.mu.Unlock()
	g.traps.Load().Close()
	g.eng.Close()
	for _, d := range g.drivers {
		d.Close()
	}
	g.fb.Close()
}

// Reload applies a new configuration: changed tunnels are rebuilt,
// untouched ones keep their SAs and counters (a changed transform set
// affects only future negotiations, as the seed says).
func (g *Gateway) Reload(cfg *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.apply(cfg)
}

// apply makes the running state match cfg. Problems with one tunnel leave
// that tunnel down with the reason; apply fails only when nothing can work.
func (g *Gateway) apply(cfg *config.Config) error {
	g.applying = cfg
	for _, tc := range cfg.Tunnels {
		old := g.tunnels[tc.Name]
		if old != nil && old.cfg.Equal(tc) && !g.leavesXFRM(old) {
			old.cfg = tc
			continue
		}
		if old != nil {
			g.log.Info("tunnel changed: rebuilding", "tunnel", old.String())
			g.teardown(old)
		}
		t, err := g.setup(tc)
		if err != nil {
			return err
		}
		g.tunnels[tc.Name] = t
	}
	for name, t := range g.tunnels {
		if cfg.Tunnel(name) == nil {
			g.log.Info("tunnel removed", "tunnel", t.String())
			g.teardown(t)
			delete(g.tunnels, name)
		}
	}
	g.cfg = cfg
	g.publishIDs()
	if err := g.configureTraps(cfg.SNMP); err != nil {
		return err
	}
	if err := g.configureIKE(cfg); err != nil {
		return err
	}
	g.syncRoutes()
	for name, v := range g.vrs {
		if !g.vrUsed(name) {
			v.close()
			delete(g.vrs, name)
		}
	}
	return nil
}

func (g *Gateway) vrUsed(name string) bool {
	for _, t := range g.tunnels {
		if t.op.name == name || t.tr.name == name {
			return true
		}
	}
	return false
}

// vr returns the open VR, opening it on first use.
func (g *Gateway) vr(c config.VR) (*vr, error) {
	if v, ok := g.vrs[c.Name]; ok {
		return v, nil
	}
	v, err := openVR(c.Name, c.Netns)
	if err != nil {
		return nil, err
	}
	g.vrs[c.Name] = v
	return v, nil
}

func (g *Gateway) publishIDs() {
	m := make(map[uint64]*Tunnel, len(g.tunnels))
	n := make(map[string]*Tunnel, len(g.tunnels))
	for _, t := range g.tunnels {
		m[t.id] = t
		n[t.Name] = t
	}
	g.byID.Store(&m)
	g.byName.Store(&n)
}

// tunnelByID returns the tunnel an SA's cookie names, for the data path.
func (g *Gateway) tunnelByID(id uint64) *Tunnel { return (*g.byID.Load())[id] }

// tunnelByName returns a tunnel without taking g.mu, for IKE's calls.
func (g *Gateway) tunnelByName(name string) *Tunnel { return (*g.byName.Load())[name] }

// configureIKE starts the IKE daemon for the signaled tunnels, or gives it
// the new configuration. Called with g.mu held.
func (g *Gateway) configureIKE(cfg *config.Config) error {
	signaled := false
	for _, t := range cfg.Tunnels {
		signaled = signaled || t.Type == config.Signaled
	}
	d := g.ike.Load()
	if !signaled && d == nil {
		return nil
	}
	ic, err := ikeConfig(cfg, g)
	if err != nil {
		return err
	}
	if d != nil {
		return d.Reconfigure(ic)
	}
	if d, err = v1.New(ic, g.seam, g.seam, g.seam); err != nil {
		return err
	}
	g.ike.Store(d)
	return nil
}

// post hands work to the control goroutine; it drops the work rather than
// block when the queue is full (the work is idempotent and periodic checks
// redo it).
func (g *Gateway) post(f func()) {
	select {
	case g.jobs <- f:
	default:
	}
}

// setup builds a tunnel: its VRs, interface addresses, sockets and, for a
// manual tunnel, its SAs. Only a failure to open a VR is an error; anything
// else leaves the tunnel down with the reason.
func (g *Gateway) setup(tc *config.Tunnel) (*Tunnel, error) {
	g.nextID++
	t := &Tunnel{Name: tc.Name, id: g.nextID, cfg: tc, dest: tc.TunnelDestination.Addr,
		local: tc.LocalSelector, remote: tc.RemoteSelector, udp: tc.UDPEncapPort != 0}
	if tc.Mode == ipsec.Transport {
		t.mode = ipsec.Transport
	}
	if !t.local.Valid() {
		t.local = selector.AnyOf(tc.TunnelSource)
	}
	if !t.remote.Valid() {
		t.remote = selector.AnyOf(tc.TunnelSource)
	}
	var err error
	if t.op, err = g.vr(tc.OperationalVR); err != nil {
		return nil, err
	}
	if t.tr, err = g.vr(tc.TransportVR); err != nil {
		return nil, err
	}
	t.ep = t.tr.endpoint(tc.TunnelSource)
	t.setState(false, "starting")
	if reason := g.build(t); reason != "" {
		t.setState(false, reason)
		g.log.Warn("tunnel down", "tunnel", t.String(), "reason", reason)
	}
	t.computeMTU()
	return t, nil
}

// build does the part of setup that can fail; it returns why the tunnel
// cannot come up, or "".
func (g *Gateway) build(t *Tunnel) string {
	tc := t.cfg
	if t.mode == ipsec.Transport && t.op == t.tr {
		return "transport mode needs an operational VR other than the transport VR"
	}
	if g.chooseXFRM(t) {
		if reason, ok := g.buildXFRM(t); ok {
			return reason
		}
	}
	if reason := g.lookasideInterface(t); reason != "" {
		return reason
	}
	if tc.Type == config.Signaled {
		if err := g.openIKE(t); err != nil {
			return err.Error()
		}
		if t.dest.IsValid() {
			if g.checkPath(t); !t.routable {
				return t.reason
			}
		}
		t.ready.Store(true)
		t.setState(false, "no SAs yet: negotiated on the first packet")
		return ""
	}
	kind := sockESP
	if tc.Outbound.Protocol == transform.AH {
		kind = sockAH
	} else if t.udp {
		kind = sockUDP
	}
	s, err := t.ep.socket(kind, tc.UDPEncapPort, func(s *sock) { g.startInbound(s, t.ep) })
	if err != nil {
		return err.Error()
	}
	t.txSock.Store(s)
	g.checkPath(t)
	for _, c := range []*config.SA{tc.Inbound, tc.Outbound} {
		sa, err := g.eng.AddSA(t.saConfig(c))
		if err != nil {
			return fmt.Sprintf("%s SA 0x%08x: %v", c.Direction, c.SPI, err)
		}
		t.mu.Lock()
		if c.Direction == ipsec.Outbound {
			t.outs = append(t.outs, sa)
			t.out.Store(sa)
		} else {
			t.in = append(t.in, sa)
		}
		t.mu.Unlock()
	}
	if !t.routable {
		return t.reason
	}
	g.changeState(t, true, "")
	g.log.Info("tunnel up", "tunnel", t.String(), "transform", t.transform().Name())
	return ""
}

// lookasideInterface puts the tunnel's secure interface on its operational
// VR's TUN device, which it creates on first use; it returns why it could
// not, or "".
func (g *Gateway) lookasideInterface(t *Tunnel) string {
	dev, created, err := t.op.device()
	if err != nil {
		return err.Error()
	}
	if created {
		g.wg.Add(1)
		go g.outbound(t.op, dev)
	}
	for _, p := range []netip.Prefix{t.cfg.Address, t.cfg.Address6} {
		if p.IsValid() {
			if err := t.op.rt.addAddr(t.op.devIndex, p); err != nil {
				return fmt.Sprintf("interface address %s: %v", p, err)
			}
		}
	}
	return ""
}

// checkPath looks the destination up in the transport VR: a tunnel whose
// destination is not routable is down, and the route's MTU sets the
// tunnel's.
func (g *Gateway) checkPath(t *Tunnel) {
	rt, err := t.tr.rt.lookup(t.dest)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.routable = false
		t.reason = fmt.Sprintf("destination %s is not routable in transport VR %s: %v", t.dest, t.tr.name, err)
		return
	}
	t.routable, t.pathMTU = true, rt.mtu
}

// teardown deletes the tunnel's SAs, routes and sockets.
func (g *Gateway) teardown(t *Tunnel) {
	t.setState(false, "removed")
	t.out.Store(nil)
	t.mu.Lock()
	sas := append(t.in, t.outs...)
	t.in, t.outs = nil, nil
	t.mu.Unlock()
	for _, sa := range sas {
		if err := g.eng.DeleteSA(sa.ID()); err != nil && !errors.Is(err, offload.ErrNoSA) {
			g.log.Warn("delete SA", "tunnel", t.String(), "err", err)
		}
	}
	if t.xf.Load() != nil {
		g.teardownXFRM(t)
	} else {
		g.delAddrs(t)
	}
	t.tr.release(t.ep)
}

// delAddrs takes the interface's addresses off the VR's TUN device.
func (g *Gateway) delAddrs(t *Tunnel) {
	for _, p := range []netip.Prefix{t.cfg.Address, t.cfg.Address6} {
		if p.IsValid() && t.op.dev != nil {
			_ = t.op.rt.delAddr(t.op.devIndex, p)
		}
	}
}

func anySelector(a netip.Addr) selector.Selector { return selector.AnyOf(a) }

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

// changeState sets a tunnel up or down and, when that is a change, says so:
// a log line and an SNMP trap (tunnel up, tunnel down with the reason).
func (g *Gateway) changeState(t *Tunnel, up bool, reason string) bool {
	if !t.setState(up, reason) {
		return false
	}
	t.mu.Lock()
	dest := t.dest
	t.mu.Unlock()
	if up {
		g.traps.Load().TunnelUp(t.String(), dest)
	} else {
		g.traps.Load().TunnelDown(t.String(), dest, reason)
	}
	return true
}
