package kernel

import (
	"fmt"
	"log/slog"
	"runtime"
	"sync"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/transform"
)

// Name is the driver's registry name.
const Name = "kernel"

// QueueDepth is the number of ops a queue pair holds.
const QueueDepth = 256

func init() {
	driver.Register(Name, open)
}

// open is the registry probe: it opens the driver when AF_ALG is present and
// otherwise returns an error wrapping driver.ErrUnavailable with the reason.
func open(c driver.Config) (driver.Driver, error) {
	st, algs := probeAFALG()
	if !st.Present {
		return nil, fmt.Errorf("kernel: %w: %s", driver.ErrUnavailable, st.Reason)
	}
	d := New(c.Workers, algs)
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Info("kernel crypto driver opened", "driver", Name, "transforms", len(d.caps), "qp", len(d.qps))
	return d, nil
}

// Driver runs lookaside crypto through the kernel crypto API (AF_ALG). It is
// safe for concurrent use; each queue pair is owned by one goroutine, as
// driver.QueuePair says.
type Driver struct {
	caps   []driver.Capability
	qps    []*driver.SoftQueuePair
	events chan driver.Event
	mu     sync.Mutex
	open   map[*session]struct{}
	closed bool
}

var _ driver.Driver = (*Driver)(nil)

// New returns a driver offering every transform whose algorithms are
// available in algs (from Probe), with one queue pair and worker goroutine
// per worker; workers <= 0 means one per CPU.
func New(workers int, algs []Algorithm) *Driver {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	have := map[string]bool{}
	for _, a := range algs {
		have[a.Name] = a.Present
	}
	d := &Driver{events: make(chan driver.Event), open: map[*session]struct{}{}}
	for _, t := range transform.All() {
		if supported(t, have) {
			d.caps = append(d.caps, driver.Capability{Transform: t, Action: driver.LookasideCrypto})
		}
	}
	for range workers {
		// One op at a time: each is system calls, and its completion is
		// handed back as soon as it is done.
		w := new(worker)
		d.qps = append(d.qps, driver.NewSoftQueuePair(QueueDepth, 1, w.run))
	}
	return d
}

// Name returns "kernel".
func (d *Driver) Name() string { return Name }

// Info lists the transforms the kernel has under the lookaside action. The
// kernel writes tags of exactly the ICV length, so no tailroom is needed.
func (d *Driver) Info() driver.Info {
	return driver.Info{
		Capabilities: append([]driver.Capability(nil), d.caps...),
		Features:     driver.FeatureInPlace,
		QueuePairs:   len(d.qps),
		QueueDepth:   QueueDepth,
	}
}

// NewSession checks the key lengths and hands the keys to the kernel.
func (d *Driver) NewSession(c driver.SessionConfig) (driver.Session, error) {
	if c.Action != driver.LookasideCrypto {
		return nil, fmt.Errorf("kernel: %w: action %s", driver.ErrUnsupported, c.Action)
	}
	info := driver.Info{Capabilities: d.caps}
	if !info.Supports(c.Transform, c.Action) {
		return nil, fmt.Errorf("kernel: %w: %s", driver.ErrUnsupported, c.Transform)
	}
	if err := driver.CheckConfig(&c); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, driver.ErrClosed
	}
	s, err := newSession(d, &c)
	if err != nil {
		return nil, err
	}
	d.open[s] = struct{}{}
	return s, nil
}

func (d *Driver) forget(s *session) {
	d.mu.Lock()
	delete(d.open, s)
	d.mu.Unlock()
}

// QueuePair returns queue pair i.
func (d *Driver) QueuePair(i int) driver.QueuePair { return d.qps[i] }

// Events never reports: a failing request completes with driver.Fault, and
// the dispatcher moves that work to the software engine.
func (d *Driver) Events() <-chan driver.Event { return d.events }

// Close stops the workers and closes every open session.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	open := d.open
	d.open = nil
	d.mu.Unlock()
	for _, q := range d.qps {
		q.Close()
	}
	for s := range open {
		if !s.closed.Swap(true) {
			s.release()
		}
	}
	close(d.events)
	return nil
}
