package checkpoint

import (
	"log/slog"
	"sync"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ipsec"
)

// Source returns the tunnels to checkpoint: each SA with its Seq, Replay
// and Used filled in from a snapshot (offload.SA.Snapshot) and its keys in
// fresh memory, which the Checkpointer zeroes once written. Rate is left
// zero: the Checkpointer measures it.
type Source func() ([]Tunnel, error)

// Sink stores a checkpoint durably and returns once it is (a state file's
// Save, a cluster's guarded etcd transaction).
type Sink func(*State) error

// Config configures a Checkpointer.
type Config struct {
	Clock  clock.Clock   // nil: the real clock
	Period time.Duration // 0: DefaultPeriod
	Source Source
	Sink   Sink
	Logger *slog.Logger // nil: discard
}

// Checkpointer takes a checkpoint every period: it reads the Source,
// measures each SA's packet rate since the last one, and writes the state
// to the Sink, timing the write so that margins cover it. Its zero value
// is not usable; call NewCheckpointer. It is safe for concurrent use.
type Checkpointer struct {
	cfg Config
	log *slog.Logger

	run   sync.Mutex // serialises checkpoints; guards rates and lat
	rates map[rateKey]rateState
	lat   [8]time.Duration // the last writes' latencies
	latN  int

	mu      sync.Mutex // guards the schedule and the status
	timer   clock.Timer
	stopped bool
	st      Status
}

type rateKey struct {
	id  ipsec.SAID
	dir ipsec.Direction
}

type rateState struct {
	at    time.Time
	count uint64 // outbound: sequence number; inbound: packets
	rate  float64
}

// Status is what show says about the checkpoints.
type Status struct {
	Period      time.Duration
	LastWrite   time.Time // when the last good checkpoint was taken
	LastLatency time.Duration
	MaxLatency  time.Duration // the longest of the last 8 writes
	Writes      uint64
	Failures    uint64
	LastError   string // of the last failed write; "" once one succeeds
	Tunnels     int
	SAs         int
}

// NewCheckpointer returns a stopped Checkpointer.
func NewCheckpointer(c Config) *Checkpointer {
	c.Clock = clock.Or(c.Clock)
	if c.Period <= 0 {
		c.Period = DefaultPeriod
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checkpointer{cfg: c, log: log, rates: map[rateKey]rateState{}, st: Status{Period: c.Period}}
}

// Start takes a checkpoint every period from now on, the first one a
// period from now.
func (c *Checkpointer) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = false
	if c.timer == nil {
		c.timer = c.cfg.Clock.AfterFunc(c.cfg.Period, c.tick)
	}
}

// Stop ends the schedule; a checkpoint under way finishes.
func (c *Checkpointer) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

func (c *Checkpointer) tick() {
	if err := c.Checkpoint(); err != nil {
		c.log.Warn("checkpoint failed", "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped && c.timer != nil {
		c.timer.Reset(c.cfg.Period)
	}
}

// Checkpoint takes and writes one checkpoint now.
func (c *Checkpointer) Checkpoint() error {
	c.run.Lock()
	defer c.run.Unlock()
	tunnels, err := c.cfg.Source()
	if err != nil {
		c.fail(err)
		return err
	}
	now := c.cfg.Clock.Now()
	maxLat := time.Duration(0)
	for _, l := range c.lat {
		maxLat = max(maxLat, l)
	}
	s := &State{Written: now, Period: c.cfg.Period, WriteLatency: maxLat, Tunnels: tunnels}
	defer s.Zero()
	c.measure(s, now)
	if err := c.cfg.Sink(s); err != nil {
		c.fail(err)
		return err
	}
	lat := c.cfg.Clock.Now().Sub(now)
	c.lat[c.latN%len(c.lat)] = lat
	c.latN++
	sas := 0
	for _, t := range s.Tunnels {
		sas += len(t.SAs)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.MaxLatency = max(maxLat, lat)
	c.st.LastWrite, c.st.LastLatency, c.st.LastError = now, lat, ""
	c.st.Writes++
	c.st.Tunnels, c.st.SAs = len(s.Tunnels), sas
	return nil
}

// measure fills in each SA's rate: the packets (outbound: sequence
// numbers) per second since the last checkpoint, or the last rate halved
// if that was higher, so that a burst is remembered for a few periods.
// SAs no longer present are forgotten.
func (c *Checkpointer) measure(s *State, now time.Time) {
	seen := make(map[rateKey]bool, len(c.rates))
	for i := range s.Tunnels {
		for j := range s.Tunnels[i].SAs {
			sa := &s.Tunnels[i].SAs[j]
			k := rateKey{sa.ID, sa.Direction}
			count := sa.Used.Packets
			if sa.Direction == ipsec.Outbound {
				count = sa.Seq
			}
			r := rateState{at: now, count: count}
			if p, ok := c.rates[k]; ok && now.After(p.at) && count >= p.count {
				r.rate = max(float64(count-p.count)/now.Sub(p.at).Seconds(), p.rate/2)
			}
			sa.Rate = r.rate
			c.rates[k] = r
			seen[k] = true
		}
	}
	for k := range c.rates {
		if !seen[k] {
			delete(c.rates, k)
		}
	}
}

func (c *Checkpointer) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Failures++
	c.st.LastError = err.Error()
}

// Status returns the checkpoints' status.
func (c *Checkpointer) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}
