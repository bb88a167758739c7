package fallback

import (
	"runtime"
	"sync"

	"golang.org/x/sys/cpu"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/transform"
)

// Name is the fallback engine's registry name.
const Name = "software"

// QueueDepth is the number of ops a queue pair holds.
const QueueDepth = 1024

// burst is the most ops a queue pair moves between goroutines at once.
const burst = 64

func init() {
	driver.Register(Name, func(c driver.Config) (driver.Driver, error) {
		return New(c.Workers), nil
	})
}

// Driver is the software engine. It is safe for concurrent use; each of its
// queue pairs is owned by one goroutine, as driver.QueuePair says.
type Driver struct {
	qps     []*driver.SoftQueuePair
	events  chan driver.Event
	workers sync.Pool // *worker for Process
	once    sync.Once
}

var (
	_ driver.Driver      = (*Driver)(nil)
	_ driver.Synchronous = (*Driver)(nil)
)

// New returns a software engine with one queue pair, and one worker
// goroutine, per worker; workers <= 0 means one per CPU.
func New(workers int) *Driver {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	d := &Driver{events: make(chan driver.Event)}
	d.workers.New = func() any { return new(worker) }
	for range workers {
		w := new(worker)
		d.qps = append(d.qps, driver.NewSoftQueuePair(QueueDepth, burst, w.run))
	}
	return d
}

// Name returns "software".
func (d *Driver) Name() string { return Name }

// Info reports every transform of the table under the lookaside and CPU
// crypto actions.
func (d *Driver) Info() driver.Info {
	f := driver.FeatureInPlace | driver.FeatureSynchronous
	if cpu.X86.HasAES || cpu.ARM64.HasAES {
		f |= driver.FeatureCPUAESNI
	}
	var caps []driver.Capability
	for _, t := range transform.All() {
		caps = append(caps,
			driver.Capability{Transform: t, Action: driver.LookasideCrypto},
			driver.Capability{Transform: t, Action: driver.CPUCrypto})
	}
	// Truncated GCM tags are computed as 16 bytes: 8 spill into tailroom.
	return driver.Info{Capabilities: caps, Features: f, QueuePairs: len(d.qps), QueueDepth: QueueDepth, Tailroom: 8}
}

// NewSession checks the key lengths and builds the cipher objects.
func (d *Driver) NewSession(c driver.SessionConfig) (driver.Session, error) {
	if c.Action != driver.LookasideCrypto && c.Action != driver.CPUCrypto {
		return nil, driver.ErrUnsupported
	}
	return newSession(c)
}

// QueuePair returns queue pair i.
func (d *Driver) QueuePair(i int) driver.QueuePair { return d.qps[i] }

// Events never reports: the software engine does not fault.
func (d *Driver) Events() <-chan driver.Event { return d.events }

// Process runs ops on the calling goroutine and returns len(ops).
func (d *Driver) Process(ops []*driver.Op) int {
	w := d.workers.Get().(*worker)
	for _, op := range ops {
		w.run(op)
	}
	d.workers.Put(w)
	return len(ops)
}

// Close stops the worker goroutines.
func (d *Driver) Close() error {
	d.once.Do(func() {
		for _, q := range d.qps {
			q.Close()
		}
		close(d.events)
	})
	return nil
}
