package offload

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// epoch is the origin of nanotime.
var epoch = time.Now()

// nanotime is a monotonic clock in nanoseconds since epoch.
func nanotime() int64 { return int64(time.Since(epoch)) }

// Errors returned by the SA database.
var (
	ErrDuplicateSPI = errors.New("offload: duplicate SPI")
	ErrNoSA         = errors.New("offload: no such SA")
	ErrBadSA        = errors.New("offload: invalid SA")
)

// Config configures an Engine.
type Config struct {
	// Fallback is the software engine; it must implement
	// driver.Synchronous and support every transform.
	Fallback driver.Driver
	// Drivers are the accelerators in order of preference.
	Drivers []driver.Driver
	// Notify receives SA lifetime events. It is called from the data
	// path and must not block.
	Notify func(Event)
	Logger *slog.Logger
}

// Engine is the SA database and the driver dispatcher; Processors run
// packets against it. An Engine is safe for concurrent use.
type Engine struct {
	shards [sadShards]sadShard
	disp   *dispatcher
	notify func(Event)
	log    *slog.Logger

	// leases are the asynchronous drivers' queue pairs, by driver index;
	// nextQP hands them out round robin.
	leases [][]*qpLease
	nextQP atomic.Uint64

	mu      sync.Mutex
	procs   []*Processor
	retired CounterValues // counters of Processors no longer in use
	closed  sync.Once
}

const sadShards = 64

type sadShard struct {
	mu  sync.RWMutex
	sas map[uint32][]*SA
	_   [40]byte // keep shards on separate cache lines
}

// New returns an Engine.
func New(c Config) (*Engine, error) {
	if c.Fallback == nil {
		return nil, errors.New("offload: no fallback driver")
	}
	if _, ok := c.Fallback.(driver.Synchronous); !ok {
		return nil, errors.New("offload: fallback driver is not synchronous")
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{notify: c.Notify, log: log}
	if e.notify == nil {
		e.notify = func(Event) {}
	}
	for i := range e.shards {
		e.shards[i].sas = map[uint32][]*SA{}
	}
	e.disp = newDispatcher(e, c.Fallback, c.Drivers, log)
	e.leases = make([][]*qpLease, len(e.disp.all))
	for i, drv := range e.disp.all {
		if e.disp.sync[i] != nil {
			continue
		}
		for j := range max(1, e.disp.infos[i].QueuePairs) {
			e.leases[i] = append(e.leases[i], &qpLease{qp: drv.QueuePair(j)})
		}
	}
	return e, nil
}

// AddSA checks c, binds the SA to a driver and adds it to the database. The
// keys are copied; the caller may zero its own.
func (e *Engine) AddSA(c SAConfig) (*SA, error) { return e.addSA(c, nil) }

// addSA is AddSA with a hook that sets the new SA's state before any packet
// can reach it (ResumeSA).
func (e *Engine) addSA(c SAConfig, init func(*SA) error) (*SA, error) {
	if err := checkSAConfig(&c); err != nil {
		return nil, err
	}
	c.CipherKey, c.AuthKey = c.CipherKey.Clone(), c.AuthKey.Clone()
	sa := &SA{cfg: c, e: e, born: nanotime(), outer: outerHeaderLen(&c), ipv6: c.Dst.Is6()}
	sa.shape = shapeOf(&c)
	if c.Direction == ipsec.Outbound {
		sa.replay = &noReplayWindow // shared, never written: only inbound SAs check replays
		sa.buildTemplate()
	} else {
		sa.replay = newReplayWindow(c.ReplayWindow)
	}
	now := nanotime()
	if c.Limits.Soft.Time > 0 {
		sa.softAt = now + int64(c.Limits.Soft.Time)
	}
	if c.Limits.Hard.Time > 0 {
		sa.hardAt = now + int64(c.Limits.Hard.Time)
	}
	if init != nil {
		if err := init(sa); err != nil {
			return nil, err
		}
	}
	sa.aged = sa.softAt != 0 || sa.hardAt != 0
	sh := &e.shards[c.SPI%sadShards]
	sh.mu.Lock()
	for _, o := range sh.sas[c.SPI] {
		if o.ID() == sa.ID() {
			sh.mu.Unlock()
			return nil, fmt.Errorf("%w 0x%08x for %s/%s", ErrDuplicateSPI, c.SPI, c.Dst, c.Transform.Protocol)
		}
	}
	b, err := e.disp.bind(sa)
	if err != nil {
		sh.mu.Unlock()
		return nil, err
	}
	sa.bind.Store(b)
	sh.sas[c.SPI] = append(sh.sas[c.SPI], sa)
	sh.mu.Unlock()
	e.log.Info("SA added", "sa", sa.ID().String(), "dir", c.Direction.String(), "transform", c.Transform.Name(), "driver", b.drv.Name(), "reason", b.reason)
	return sa, nil
}

func checkSAConfig(c *SAConfig) error {
	t := c.Transform
	switch {
	case !t.Valid():
		return fmt.Errorf("%w: unknown transform %v", ErrBadSA, t)
	case t.Protocol == transform.ESP && !t.Encrypts() && !t.Authenticates():
		return fmt.Errorf("%w: ESP with neither confidentiality nor integrity", ErrBadSA)
	case c.SPI < 256:
		return fmt.Errorf("%w: SPI 0x%08x is reserved (RFC 4303 §2.1)", ErrBadSA, c.SPI)
	case !c.Src.IsValid() || !c.Dst.IsValid() || c.Src.Is4() != c.Dst.Is4():
		return fmt.Errorf("%w: endpoints %v and %v", ErrBadSA, c.Src, c.Dst)
	case c.UDPEncap && t.Protocol != transform.ESP:
		return fmt.Errorf("%w: UDP encapsulation is for ESP only (RFC 3948)", ErrBadSA)
	case c.Framing == FrameESP && !c.UDPEncap:
		return fmt.Errorf("%w: framing from the ESP header is for ESP in UDP", ErrBadSA)
	case c.ReplayWindow < 0 || c.ReplayWindow > MaxReplayWindow:
		return fmt.Errorf("%w: replay window %d outside 0..%d", ErrBadSA, c.ReplayWindow, MaxReplayWindow)
	case len(c.CipherKey) != t.CipherKeyLen():
		return fmt.Errorf("%w: %s needs a %d-byte cipher key, got %d", ErrBadSA, t, t.CipherKeyLen(), len(c.CipherKey))
	case len(c.AuthKey) != t.AuthKeyLen():
		return fmt.Errorf("%w: %s needs a %d-byte auth key, got %d", ErrBadSA, t, t.AuthKeyLen(), len(c.AuthKey))
	}
	return nil
}

// LookupSA returns the SA with the given identity, or nil.
func (e *Engine) LookupSA(id ipsec.SAID) *SA {
	return e.lookup(id.SPI, id.Protocol, id.Dst)
}

func (e *Engine) lookup(spi uint32, p transform.Protocol, dst netip.Addr) *SA {
	sh := &e.shards[spi%sadShards]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	for _, sa := range sh.sas[spi] {
		if sa.cfg.Transform.Protocol == p && sa.cfg.Dst == dst {
			return sa
		}
	}
	return nil
}

// DeleteSA removes an SA, closes its driver sessions and zeroes its keys.
// Packets in flight for it are dropped.
func (e *Engine) DeleteSA(id ipsec.SAID) error {
	sh := &e.shards[id.SPI%sadShards]
	sh.mu.Lock()
	list := sh.sas[id.SPI]
	var sa *SA
	for i, o := range list {
		if o.ID() == id {
			sa = o
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if sa == nil {
		sh.mu.Unlock()
		return fmt.Errorf("%w %s", ErrNoSA, id)
	}
	if len(list) == 0 {
		delete(sh.sas, id.SPI)
	} else {
		sh.sas[id.SPI] = list
	}
	sh.mu.Unlock()
	sa.destroy()
	e.log.Info("SA deleted", "sa", id.String())
	return nil
}

// destroy marks the SA deleted, closes its sessions and zeroes its keys.
func (sa *SA) destroy() {
	sa.setState(stateDeleted)
	if b := sa.bind.Load(); b != nil {
		b.retire()
	}
	sa.mu.Lock()
	if sa.fallback != nil {
		sa.fallback.retire()
	}
	sa.cfg.CipherKey.Zero()
	sa.cfg.AuthKey.Zero()
	sa.mu.Unlock()
}

// SAs returns every SA in the database.
func (e *Engine) SAs() []*SA {
	var out []*SA
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.RLock()
		for _, l := range sh.sas {
			out = append(out, l...)
		}
		sh.mu.RUnlock()
	}
	return out
}

// Sweep fires the age events of SAs that carry no traffic; call it about
// once a second.
func (e *Engine) Sweep() {
	now := nanotime()
	for _, sa := range e.SAs() {
		sa.admit(now)
	}
}

// NewProcessor returns a Processor for one goroutine.
func (e *Engine) NewProcessor() *Processor {
	p := newProcessor(e)
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

// Counters returns the global counters, summed over every Processor.
func (e *Engine) Counters() CounterValues {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.retired
	for _, p := range e.procs {
		v.Add(p.stats.Snapshot())
	}
	return v
}

// ResetCounters zeroes the global counters.
func (e *Engine) ResetCounters() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.retired = CounterValues{}
	for _, p := range e.procs {
		p.stats.Reset()
	}
}

// retire drops Processors from the engine's list, keeping their counts in
// the global counters.
func (e *Engine) retire(ps ...*Processor) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range ps {
		if i := slices.Index(e.procs, p); i >= 0 {
			e.retired.Add(p.stats.Snapshot())
			e.procs = slices.Delete(e.procs, i, i+1)
		}
	}
}

// Fallbacks returns how many times work moved to the fallback engine, by
// reason.
func (e *Engine) Fallbacks() map[string]uint64 { return e.disp.fallbacks() }

// Close deletes every SA and stops watching the drivers. It does not close
// the drivers, which the caller owns.
func (e *Engine) Close() {
	e.closed.Do(func() {
		for _, sa := range e.SAs() {
			_ = e.DeleteSA(sa.ID())
		}
		e.disp.close()
	})
}
