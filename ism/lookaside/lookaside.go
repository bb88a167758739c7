// Package lookaside is ISM's own datapath, lookaside crypto after DPDK's
// rte_security: the secure interfaces of an operational VR share one TUN
// device, whose packets are routed to their tunnel by the VR's routes (a
// fib), encapsulated by the offload engine on a crypto driver, and sent
// from the tunnel endpoint's transport socket; ESP and AH come back the
// other way. The engine frames ESP in UDP from the ESP header: the UDP
// socket owns the outer IP and UDP headers. Raw IP sockets get and give
// whole outer IP packets (IP_HDRINCL).
package lookaside

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/offload"
)

// Config configures the datapath.
type Config struct {
	// Drivers are the accelerators to offer the engine, in order of
	// preference; the datapath closes them.
	Drivers []driver.Driver
	Events  datapath.Events
	// Clock runs the grace period of replaced outbound SAs; nil is
	// clock.Real.
	Clock  clock.Clock
	Logger *slog.Logger
	// Workers is the number of lanes of each pipeline (a VR device's
	// send side, a transport socket's receive side); 0 means GOMAXPROCS.
	Workers int
}

// Datapath is the lookaside datapath. Its methods are safe for concurrent
// use; the zero value is not usable (New).
type Datapath struct {
	log     *slog.Logger
	events  datapath.Events
	clock   clock.Clock
	fb      *fallback.Driver
	drivers []driver.Driver
	// pool is an accelerator's packet memory, when one has its own, and
	// poolName that accelerator's name.
	pool     driver.BufferPool
	poolName string
	eng      *offload.Engine
	// drops count what no tunnel can be charged with.
	drops offload.Counters
	wg    sync.WaitGroup

	// relMu guards relProc, the processor that sends the packets held for
	// an acquire once the SA is in (hold.go).
	relMu   sync.Mutex
	relProc *offload.Processor

	// byID maps the engine's SA cookies to paths, for the receive side.
	// It is rebuilt (published) once per batch of paths opened or
	// closed, not at each: see publishPending.
	byID      atomic.Pointer[map[uint64]*path]
	nextID    atomic.Uint64
	publishes atomic.Uint64

	// bufBytes is the Go memory of the packet buffers the running
	// pipelines' bursts hold, rxBytes the sockets' receive bursts' part.
	bufBytes, rxBytes atomic.Int64

	// workers is Config.Workers, as SetWorkers changed it.
	workers atomic.Int32

	mu      sync.Mutex
	pipes   map[*offload.Pipeline]string // running, by kind: "device", "socket"
	ended   offload.PipelineStats        // of the pipelines that ended
	sweeper clock.Timer
	devs    map[*vr.VR]*device
	paths   map[*datapath.Tunnel]*path
	pending map[*grace]struct{}
	delayed map[*delayed]struct{} // releases of held packets (hold.go)
	// unpublished says paths were opened or closed since byID was
	// last built.
	unpublished bool
	closed      bool
}

var (
	_ datapath.Datapath = (*Datapath)(nil)
	_ datapath.Resumer  = (*path)(nil)
)

// New starts a datapath: its engine on the drivers, with the software
// engine behind them.
func New(c Config) (*Datapath, error) {
	d := &Datapath{log: c.Logger, events: c.Events, clock: clock.Or(c.Clock), fb: fallback.New(0), drivers: c.Drivers,
		devs: map[*vr.VR]*device{}, paths: map[*datapath.Tunnel]*path{}, pending: map[*grace]struct{}{},
		delayed: map[*delayed]struct{}{}, pipes: map[*offload.Pipeline]string{}}
	d.workers.Store(int32(max(c.Workers, 0)))
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.byID.Store(&map[uint64]*path{})
	for _, drv := range d.drivers {
		if p, ok := drv.(driver.BufferPool); ok && drv.Info().Features&driver.FeatureBufferPool != 0 {
			d.pool, d.poolName = p, drv.Name()
			d.log.Info("packet buffers from the driver's memory", "driver", drv.Name())
			break
		}
	}
	var err error
	d.eng, err = offload.New(offload.Config{Fallback: d.fb, Drivers: d.drivers, Notify: d.notify, Logger: d.log})
	if err != nil {
		d.fb.Close()
		return nil, err
	}
	d.mu.Lock()
	d.armSweep()
	d.mu.Unlock()
	return d, nil
}

// sweepEvery is how often the SAs' age limits are checked, so that an
// idle SA expires on time too.
const sweepEvery = time.Second

// armSweep schedules the next sweep; d.mu is held.
func (d *Datapath) armSweep() {
	d.wg.Add(1)
	d.sweeper = d.clock.AfterFunc(sweepEvery, func() {
		defer d.wg.Done()
		d.eng.Sweep()
		d.expireHeld()
		d.mu.Lock()
		if !d.closed {
			d.armSweep()
		}
		d.mu.Unlock()
	})
}

// Workers returns the number of lanes each pipeline runs.
func (d *Datapath) Workers() int {
	if n := int(d.workers.Load()); n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// SetWorkers sets the number of lanes of every pipeline, running or to
// come; 0 means GOMAXPROCS.
func (d *Datapath) SetWorkers(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.workers.Store(int32(max(n, 0)))
	for pl := range d.pipes {
		pl.SetWorkers(d.Workers())
	}
}

// run keeps a pipeline in the list SetWorkers changes until it ends;
// kind says what it serves in Stats.
func (d *Datapath) run(pl *offload.Pipeline, kind string) {
	d.mu.Lock()
	d.pipes[pl] = kind
	pl.SetWorkers(d.Workers()) // SetWorkers may have run since it started
	d.mu.Unlock()
	pl.Wait()
	d.mu.Lock()
	delete(d.pipes, pl)
	st := pl.Stats()
	d.ended.Bursts += st.Bursts
	d.ended.Overlapped += st.Overlapped
	d.ended.Lanes = max(d.ended.Lanes, st.Lanes)
	d.mu.Unlock()
}

// Name returns "lookaside".
func (d *Datapath) Name() string { return "lookaside" }

// Supports takes every tunnel: the engine's software fallback can run
// every transform.
func (d *Datapath) Supports(*datapath.Tunnel) error { return nil }

// notify turns the engine's lifetime events into the line card's.
func (d *Datapath) notify(ev offload.Event) {
	d.events.Expired(ev.SA.ID(), ev.Kind == offload.EventHardExpire, ev.Cause.String())
}

// Open puts t's secure interface on its operational VR's TUN device, made
// on first use, with t's addresses.
func (d *Datapath) Open(t *datapath.Tunnel) (datapath.Path, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("lookaside: datapath closed")
	}
	dev, err := d.device(t.Op)
	if err != nil {
		return nil, err
	}
	p := &path{d: d, t: t, id: d.nextID.Add(1), dev: dev}
	p.outs.Store(&outTable{})
	for i, a := range t.Addresses {
		if err := t.Op.Netlink.AddAddr(dev.index, a); err != nil {
			for _, b := range t.Addresses[:i] {
				_ = t.Op.Netlink.DelAddr(dev.index, b)
			}
			d.release(dev)
			return nil, fmt.Errorf("lookaside: interface address %s: %w", a, err)
		}
	}
	d.paths[t] = p
	d.unpublished = true // at the end of the load (SetRoutes) or its first packet
	return p, nil
}

// publishPending rebuilds the cookie map if paths were opened or closed
// since it was last built: at the end of a configuration load (SetRoutes),
// or when a packet comes for a path not yet in it (pathOf), so that
// loading n tunnels costs one rebuild, not n. A closed path stays in the
// map until then, but no SA carries its cookie any more. d.mu is held.
func (d *Datapath) publishPending() {
	if !d.unpublished {
		return
	}
	d.unpublished = false
	d.publishes.Add(1)
	m := make(map[uint64]*path, len(d.paths))
	for _, p := range d.paths {
		m[p.id] = p
	}
	d.byID.Store(&m)
}

// Publishes returns how many times the receive side's map of tunnels was
// rebuilt.
func (d *Datapath) Publishes() uint64 { return d.publishes.Load() }

// Route is one of an operational VR's routes: a prefix (a destination, or
// for a policy route a source) to a tunnel.
type Route struct {
	Prefix netip.Prefix
	Tunnel *datapath.Tunnel
}

// SetRoutes gives the datapath an operational VR's routes, by which it
// tells which tunnel a packet read from the VR's TUN device belongs to:
// source-based policy routes (src) first, then destination routes (dst),
// longest prefix first. Routes to tunnels on other datapaths are left out.
func (d *Datapath) SetRoutes(v *vr.VR, dst, src []Route) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.publishPending()
	dev := d.devs[v]
	if dev == nil {
		return
	}
	f := &fib{}
	for _, r := range dst {
		if p := d.paths[r.Tunnel]; p != nil {
			f.byDst.add(r.Prefix, p)
		}
	}
	for _, r := range src {
		if p := d.paths[r.Tunnel]; p != nil {
			f.bySrc.add(r.Prefix, p)
		}
	}
	dev.fib.Store(f)
}

// Stats returns the engine's traffic, the drops no tunnel was charged
// with, the drivers and the fallbacks to the software engine.
func (d *Datapath) Stats() datapath.Stats {
	ev, dv := d.eng.Counters(), d.drops.Snapshot()
	s := datapath.Stats{Engine: datapath.Traffic{Packets: ev.Packets, Bytes: ev.Bytes, Drops: ev.DropMap()},
		Drops: dv.DropMap(), Drivers: []string{d.fb.Name()}, Fallbacks: d.eng.Fallbacks()}
	for _, drv := range d.drivers {
		s.Drivers = append(s.Drivers, drv.Name())
	}
	s.Buffers = d.poolName
	s.Workers = d.Workers()
	s.Pipelines.BufferBytes = d.bufBytes.Load()
	s.Pipelines.ReceiveBufferBytes = d.rxBytes.Load()
	d.mu.Lock()
	s.Pipelines.Bursts, s.Pipelines.Overlapped, s.Pipelines.Lanes = d.ended.Bursts, d.ended.Overlapped, d.ended.Lanes
	for pl, kind := range d.pipes {
		st := pl.Stats()
		s.Pipelines.Bursts += st.Bursts
		s.Pipelines.Overlapped += st.Overlapped
		s.Pipelines.Lanes = max(s.Pipelines.Lanes, st.Lanes)
		if kind == "device" {
			s.Pipelines.Devices++
		} else {
			s.Pipelines.Sockets++
		}
	}
	d.mu.Unlock()
	return s
}

// ResetStats zeroes the engine's and the datapath's own counters.
func (d *Datapath) ResetStats() {
	d.drops.Reset()
	d.eng.ResetCounters()
}

// Close stops the outbound pipelines (the TUN devices close), closes the
// paths, deleting their SAs at once, then the engine and the drivers.
// The endpoints' read loops, which call the datapath, must have ended.
func (d *Datapath) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	if d.sweeper.Stop() {
		d.wg.Done()
	}
	for g := range d.pending {
		if g.timer.Stop() {
			d.wg.Done()
		}
		_ = d.eng.DeleteSA(g.id)
	}
	clear(d.pending)
	for r := range d.delayed {
		if r.timer.Stop() {
			d.wg.Done()
		}
	}
	clear(d.delayed)
	paths := make([]*path, 0, len(d.paths))
	for _, p := range d.paths {
		paths = append(paths, p)
	}
	for _, dev := range d.devs {
		dev.dev.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
	for _, p := range paths {
		p.Close()
	}
	d.eng.Close()
	for _, drv := range d.drivers {
		drv.Close()
	}
	d.fb.Close()
}

// grace is a replaced outbound SA waiting out the packets that may still
// be on their way through it.
type grace struct {
	id    ipsec.SAID
	timer clock.Timer
}

// deleteLater deletes an outbound SA after outboundGrace.
func (d *Datapath) deleteLater(id ipsec.SAID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		_ = d.eng.DeleteSA(id)
		return
	}
	g := &grace{id: id}
	d.pending[g] = struct{}{}
	d.wg.Add(1)
	g.timer = d.clock.AfterFunc(outboundGrace, func() {
		defer d.wg.Done()
		d.mu.Lock()
		_, due := d.pending[g]
		delete(d.pending, g)
		d.mu.Unlock()
		if due {
			_ = d.eng.DeleteSA(id)
		}
	})
}
