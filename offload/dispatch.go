package offload

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ismgw/ism/driver"
)

// binding is an SA's driver and session. It never changes once made; an SA
// moves to another driver by swapping in a new binding and retiring the old
// one. A retired binding closes its session when the last Processor using
// it lets go, so a session is never closed under a packet in flight.
type binding struct {
	drv    driver.Driver
	idx    int // index in dispatcher.all; 0 is the fallback engine
	sess   driver.Session
	reason string

	refs    atomic.Int64
	retired atomic.Bool
	closed  atomic.Bool
}

// acquire takes a reference for a burst; it fails once the binding is
// retired, and the caller looks at the SA's binding again.
func (b *binding) acquire() bool {
	b.refs.Add(1)
	if b.retired.Load() {
		b.release()
		return false
	}
	return true
}

func (b *binding) release() {
	if b.refs.Add(-1) == 0 && b.retired.Load() {
		b.close()
	}
}

// retire closes the session now, or when the last reference goes.
func (b *binding) retire() {
	b.retired.Store(true)
	if b.refs.Load() == 0 {
		b.close()
	}
}

func (b *binding) close() {
	if !b.closed.Swap(true) {
		_ = b.sess.Close()
	}
}

// Reasons for work moving to the fallback engine.
const (
	fbRefused     = iota // the driver does not support the transform
	fbSession            // the driver failed to make the session
	fbUnavailable        // the configured driver is not present
	fbQueueFull          // the driver's queue stayed full
	fbFault              // the driver failed an op or reported a fault
	numFallback
)

var fallbackNames = [numFallback]string{"refused", "session-failed", "unavailable", "queue-full", "fault"}

// dispatcher binds SAs to drivers and moves them to the fallback engine. It
// is safe for concurrent use.
type dispatcher struct {
	e      *Engine
	all    []driver.Driver // [0] is the fallback engine
	infos  []driver.Info
	sync   []driver.Synchronous // non-nil where the driver runs inline
	counts [numFallback]atomic.Uint64
	// tailroom is the most any driver needs after a packet.
	tailroom int
	log      *slog.Logger
	stop     chan struct{}
	wg       sync.WaitGroup
}

func newDispatcher(e *Engine, fb driver.Driver, accel []driver.Driver, log *slog.Logger) *dispatcher {
	d := &dispatcher{e: e, log: log, stop: make(chan struct{})}
	for _, drv := range append([]driver.Driver{fb}, accel...) {
		info := drv.Info()
		d.all = append(d.all, drv)
		d.infos = append(d.infos, info)
		d.tailroom = max(d.tailroom, info.Tailroom)
		var s driver.Synchronous
		if sd, ok := drv.(driver.Synchronous); ok && (drv == fb || info.Features&driver.FeatureSynchronous != 0) {
			s = sd
		}
		d.sync = append(d.sync, s)
	}
	for i, drv := range d.all[1:] {
		d.wg.Add(1)
		go d.watch(i+1, drv)
	}
	return d
}

// watch moves every SA off a driver that reports a fault.
func (d *dispatcher) watch(idx int, drv driver.Driver) {
	defer d.wg.Done()
	events := drv.Events()
	for {
		var ev driver.Event
		var ok bool
		select {
		case ev, ok = <-events:
		case <-d.stop:
			return
		}
		if !ok {
			return
		}
		if ev.Kind != driver.EventFault {
			d.log.Info("driver recovered; new SAs may use it again", "driver", drv.Name())
			continue
		}
		d.log.Warn("driver fault: moving its SAs to the software engine", "driver", drv.Name(), "err", ev.Err)
		for _, sa := range d.e.SAs() {
			if b := sa.bind.Load(); b != nil && b.idx == idx {
				d.moveToFallback(sa, fmt.Sprintf("%s reported a fault", drv.Name()))
			}
		}
	}
}

func (d *dispatcher) close() {
	close(d.stop)
	d.wg.Wait()
}

func (d *dispatcher) sessionConfig(sa *SA, a driver.Action) driver.SessionConfig {
	c := &sa.cfg
	return driver.SessionConfig{
		Action: a, Transform: c.Transform, Direction: c.Direction, SPI: c.SPI,
		CipherKey: c.CipherKey, AuthKey: c.AuthKey, ESN: c.ESN, ReplayWindow: c.ReplayWindow,
		SoftBytes: c.Limits.Soft.Bytes, HardBytes: c.Limits.Hard.Bytes,
	}
}

func (d *dispatcher) action(idx int) driver.Action {
	if d.sync[idx] != nil {
		return driver.CPUCrypto
	}
	return driver.LookasideCrypto
}

// bind picks the SA's driver: the first accelerator, in order of preference,
// that supports the transform and makes a session; else the fallback engine.
func (d *dispatcher) bind(sa *SA) (*binding, error) {
	want := sa.cfg.Driver
	if want == "auto" {
		want = ""
	}
	t := sa.cfg.Transform
	var why []string
	found := want == "" || want == d.all[0].Name()
	for i := 1; i < len(d.all); i++ {
		drv := d.all[i]
		if want != "" && drv.Name() != want {
			continue
		}
		found = true
		a := d.action(i)
		if !d.infos[i].Supports(t, a) {
			why = append(why, fmt.Sprintf("%s does not support %s", drv.Name(), t))
			d.counts[fbRefused].Add(1)
			continue
		}
		sess, err := drv.NewSession(d.sessionConfig(sa, a))
		if err != nil {
			why = append(why, fmt.Sprintf("%s refused the session: %v", drv.Name(), err))
			d.counts[fbSession].Add(1)
			continue
		}
		return &binding{drv: drv, idx: i, sess: sess, reason: fmt.Sprintf("%s supports %s (%s)", drv.Name(), t, a)}, nil
	}
	if !found {
		why = append(why, fmt.Sprintf("driver %s is not available", want))
		d.counts[fbUnavailable].Add(1)
	}
	b, err := d.fallbackBinding(sa)
	if err != nil {
		return nil, err
	}
	switch {
	case len(why) > 0:
		b.reason = "fallback: " + strings.Join(why, "; ")
		d.log.Warn("SA uses the software engine", "sa", sa.ID().String(), "reason", b.reason)
	case want == d.all[0].Name():
		b.reason = "configured"
	case len(d.all) == 1:
		b.reason = "no accelerator present"
	}
	return b, nil
}

func (d *dispatcher) fallbackBinding(sa *SA) (*binding, error) {
	sess, err := d.all[0].NewSession(d.sessionConfig(sa, driver.CPUCrypto))
	if err != nil {
		return nil, fmt.Errorf("offload: %s: %w", sa.cfg.Transform, err)
	}
	return &binding{drv: d.all[0], sess: sess, reason: "software engine"}, nil
}

// spill returns the SA's fallback binding for work an accelerator could not
// take, making it on first use; nil once the SA is deleted.
func (d *dispatcher) spill(sa *SA) *binding {
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if sa.state.Load()&stateDeleted != 0 {
		return nil
	}
	if sa.fallback == nil {
		b, err := d.fallbackBinding(sa)
		if err != nil {
			return nil
		}
		sa.fallback = b
	}
	return sa.fallback
}

// moveToFallback rebinds the SA to the fallback engine for good.
func (d *dispatcher) moveToFallback(sa *SA, why string) {
	old := sa.bind.Load()
	if old == nil || old.idx == 0 || sa.state.Load()&stateDeleted != 0 {
		return
	}
	nb, err := d.fallbackBinding(sa)
	if err != nil {
		return
	}
	nb.reason = "fallback: " + why
	if !sa.bind.CompareAndSwap(old, nb) {
		nb.close()
		return
	}
	old.retire()
	d.counts[fbFault].Add(1)
	d.log.Warn("SA moved to the software engine", "sa", sa.ID().String(), "driver", old.drv.Name(), "reason", why)
}

func (d *dispatcher) fallbacks() map[string]uint64 {
	m := make(map[string]uint64, numFallback)
	for i := range d.counts {
		m[fallbackNames[i]] = d.counts[i].Load()
	}
	return m
}
