package trap

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ismgw/ism/ism/config"
)

// QueueLen is the number of traps each receiver's queue holds.
const QueueLen = 256

// Sender sends the enabled traps of a configuration to its receivers. Its
// methods never block and are safe for concurrent use, and on a nil Sender
// they do nothing.
type Sender struct {
	enabled   []config.Trap
	receivers []*receiver
	engineID  []byte
	start     time.Time
	now       func() time.Time
	log       *slog.Logger

	done      chan struct{}
	mu        sync.RWMutex // held for writing only to set closed
	closed    bool
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// options are the knobs tests turn.
type options struct {
	queueLen int
	now      func() time.Time
}

// New returns a Sender for cfg, its receivers' sockets open and their
// goroutines running. The sockets are opened in the calling thread's
// network namespace (the daemon's own VR). The SNMPv3 engine ID is
// cfg.EngineID, or DeriveEngineID's when that is nil; cfg's secrets are
// copied, so the caller may zero cfg afterwards. A nil log discards.
func New(cfg config.SNMP, log *slog.Logger) (*Sender, error) {
	s, err := newSender(cfg, log, options{queueLen: QueueLen, now: time.Now})
	if err != nil {
		return nil, err
	}
	s.startSending()
	return s, nil
}

// newSender is New without starting the goroutines.
func newSender(cfg config.SNMP, log *slog.Logger, o options) (*Sender, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sender{
		enabled:  slices.Clone(cfg.Traps),
		engineID: slices.Clone(cfg.EngineID),
		start:    o.now(),
		now:      o.now,
		log:      log,
		done:     make(chan struct{}),
	}
	if s.engineID == nil && slices.ContainsFunc(cfg.Hosts, func(h config.TrapHost) bool { return h.Version == config.SNMPv3 }) {
		id, err := DeriveEngineID()
		if err != nil {
			return nil, err
		}
		s.engineID = id
	}
	boots := engineBoots(s.start)
	var errs []error
	for _, h := range cfg.Hosts {
		r, err := newReceiver(h, s.engineID, boots, o.queueLen, log)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.receivers = append(s.receivers, r)
	}
	if err := errors.Join(errs...); err != nil {
		for _, r := range s.receivers {
			_ = r.close()
		}
		return nil, err
	}
	if len(s.receivers) > 0 {
		s.log.Info("snmp traps", "snmp", cfg, "engine_id", formatEngineID(s.engineID), "engine_boots", boots)
	}
	return s, nil
}

// startSending starts one goroutine per receiver.
func (s *Sender) startSending() {
	for _, r := range s.receivers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			r.run(s.done, s.start, s.now)
		}()
	}
}

// Enabled reports whether traps of kind t are sent.
func (s *Sender) Enabled(t config.Trap) bool {
	return s != nil && len(s.receivers) > 0 && slices.Contains(s.enabled, t)
}

// TunnelUp reports that the tunnel to destination came up (ismTunnelUp).
func (s *Sender) TunnelUp(tunnel string, destination netip.Addr) {
	s.post(&notification{kind: config.TrapTunnelUp, tunnel: tunnel, destination: destination})
}

// TunnelDown reports that the tunnel to destination went down, and why
// (ismTunnelDown).
func (s *Sender) TunnelDown(tunnel string, destination netip.Addr, reason string) {
	s.post(&notification{kind: config.TrapTunnelDown, tunnel: tunnel, destination: destination, reason: reason})
}

// IKEFailure reports that negotiating the SAs of the tunnel with
// destination failed, and why (ismIkeFailure).
func (s *Sender) IKEFailure(tunnel string, destination netip.Addr, reason string) {
	s.post(&notification{kind: config.TrapIKEFailure, tunnel: tunnel, destination: destination, reason: reason})
}

// PeerDead reports that DPD declared the tunnel's destination dead at
// detectedAt, or now if that is zero (ismDpdPeerDead).
func (s *Sender) PeerDead(tunnel string, destination netip.Addr, detectedAt time.Time) {
	if s != nil && detectedAt.IsZero() {
		detectedAt = s.now()
	}
	s.post(&notification{kind: config.TrapDPD, tunnel: tunnel, destination: destination, detectedAt: detectedAt})
}

// Failover reports that the tunnel switched from one destination to
// another, and why (ismTunnelFailover).
func (s *Sender) Failover(tunnel string, from, to netip.Addr, reason string) {
	s.post(&notification{kind: config.TrapFailover, tunnel: tunnel, destination: from, to: to, reason: reason})
}

// ClusterOwnership reports that this cluster node (node) took the tunnel
// group or stopped owning it: event is "acquired" or "stopped", reason how
// or why (failover from NODE, handover, fenced, ...) (ismClusterOwnership).
func (s *Sender) ClusterOwnership(group, node, event, reason string) {
	s.post(&notification{kind: config.TrapClusterOwnership, group: group, node: node, event: event, reason: reason})
}

// post queues n for every receiver, or counts it dropped where the queue
// is full or the Sender closed.
func (s *Sender) post(n *notification) {
	if !s.Enabled(n.kind) {
		return
	}
	// TimeTicks wrap at 2^32 hundredths of a second (RFC 2578 §7.1.8).
	n.uptime = uint32(s.now().Sub(s.start) / (10 * time.Millisecond))
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.receivers {
		if s.closed {
			r.dropped.Add(1)
			continue
		}
		select {
		case r.q <- n:
		default:
			r.dropped.Add(1)
		}
	}
}

// Stats returns the counters of each receiver, in the order of the
// configuration.
func (s *Sender) Stats() []ReceiverStats {
	if s == nil {
		return nil
	}
	out := make([]ReceiverStats, len(s.receivers))
	for i, r := range s.receivers {
		out[i] = r.stats()
	}
	return out
}

// EngineID returns the SNMPv3 engine ID the traps carry, the one v3
// receivers must configure for their users; nil when there is no SNMPv3
// receiver and none is configured.
func (s *Sender) EngineID() []byte {
	if s == nil {
		return nil
	}
	return slices.Clone(s.engineID)
}

// Close sends the traps still queued, stops the goroutines, closes the
// sockets and zeroes the copies of the secrets. Traps posted after Close
// are counted as dropped. Close may be called more than once.
func (s *Sender) Close() error {
	if s == nil {
		return nil
	}
	var errs []error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		s.wg.Wait()
		for _, r := range s.receivers {
			if err := r.close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}
