package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/ismgw/ism/checkpoint"
)

// groupState is where this node stands with a group.
type groupState uint8

// A group goes idle → campaigning → starting → owner → handing-over →
// idle; a campaign given up goes through withdrawing (its election key
// being deleted) back to idle; losing the lease or the election key sends
// any state back to idle at once.
const (
	idle groupState = iota
	campaigning
	withdrawing
	starting
	owner
	handingOver
)

func (s groupState) String() string {
	return [...]string{"idle", "campaigning", "withdrawing", "starting", "owner", "handing-over"}[s]
}

// group is this node's side of one tunnel group. Its fields are guarded
// by Node.mu, but for gen and the write state, which its checkpointer
// alone touches.
type group struct {
	cfg    Group
	state  groupState
	sess   *session
	cancel context.CancelFunc // of the campaign, or of the ownership
	octx   context.Context    // of the ownership: the checkpoint writes
	// gen counts ownerships; Takeover.Valid compares it, so that a
	// stopped ownership is invalid at once.
	gen  atomic.Uint64
	live bool // Start was called and Stop not yet
	key  string
	rev  int64 // the election key's create revision: the write guard
	ckpt *checkpoint.Checkpointer
	// detected is when this node set out to take the group; since when
	// it started it.
	detected, since time.Time
	txns, puts      atomic.Uint64
	refused         atomic.Uint64
	lastWrite       atomic.Int64 // unix ns of the last checkpoint written
}

// endOwnership ends the group's ownership on this node, if any: its
// context and checkpoints stop, and Valid turns false. It reports whether
// the caller must call Gateway.Stop (once per Start). Node.mu is held.
func (g *group) endOwnership() bool {
	if g.cancel != nil {
		g.cancel()
		g.cancel = nil
	}
	if g.ckpt != nil {
		g.ckpt.Stop()
	}
	if !g.live {
		return false
	}
	g.live = false
	g.gen.Add(1)
	return true
}

// reset makes the group idle. Node.mu is held.
func (g *group) reset() {
	g.state, g.sess, g.key, g.rev, g.ckpt, g.octx = idle, nil, "", 0, nil, nil
}

// campaign starts this node's campaign for g. Node.mu is held.
func (n *Node) campaign(g *group) {
	s := n.sess
	ctx, cancel := context.WithCancel(s.ctx)
	g.state, g.sess, g.cancel, g.detected = campaigning, s, cancel, n.cfg.Clock.Now()
	e := concurrency.NewElection(s.cs, n.electionPrefix(g.cfg.Name))
	go func() {
		err := e.Campaign(ctx, n.cfg.Node)
		n.post(func() { n.campaignDone(g, s, e, err) })
	}()
}

// campaignDone takes the outcome of a campaign. Node.mu is held.
func (n *Node) campaignDone(g *group, s *session, e *concurrency.Election, err error) {
	mine := g.state == campaigning && g.sess == s && n.sess == s
	if err != nil || !mine || !n.fence.valid() {
		if mine {
			if g.cancel != nil {
				g.cancel()
			}
			n.withdraw(g, s)
		} else {
			go n.deleteElectionKey(g.cfg.Name, s)
		}
		return
	}
	g.state, g.key, g.rev, g.live = starting, e.Key(), e.Rev(), true
	gen := g.gen.Add(1)
	ctx, cancel := context.WithCancel(s.ctx)
	g.cancel, g.octx = cancel, ctx
	go n.start(ctx, g, gen)
}

// withdraw deletes this node's election key for g, then makes g idle.
// Node.mu is held.
func (n *Node) withdraw(g *group, s *session) {
	g.state = withdrawing
	go func() {
		n.deleteElectionKey(g.cfg.Name, s)
		n.post(func() {
			if g.state == withdrawing {
				g.reset()
			}
			n.refreshView()
		})
	}()
}

func (n *Node) deleteElectionKey(group string, s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.TTL)
	defer cancel()
	if _, err := n.cli.Delete(ctx, n.electionKey(group, s.lease)); err != nil {
		n.log.Warn("cannot withdraw from an election", "group", group, "err", err)
	}
}

// start reads the group's checkpoint and starts the group on the gateway.
func (n *Node) start(ctx context.Context, g *group, gen uint64) {
	tk, meta, err := n.readGroup(ctx, g)
	if err == nil {
		tk.Valid = func() bool { return n.fence.valid() && g.gen.Load() == gen }
		err = n.cfg.Gateway.Start(ctx, tk)
		for i := range tk.Tunnels {
			tk.Tunnels[i].Zero()
		}
	}
	done := n.cfg.Clock.Now()
	n.post(func() { n.startDone(g, gen, err, done, meta) })
}

// startDone makes a started group owned, or gives it up. Node.mu is held.
func (n *Node) startDone(g *group, gen uint64, err error, done time.Time, prev groupMeta) {
	if g.gen.Load() != gen || g.state != starting {
		return // ownership ended meanwhile, and Stop was called then
	}
	if err != nil {
		n.log.Error("group failed to start", "group", g.cfg.Name, "err", err)
		if g.endOwnership() {
			n.later(func() { n.cfg.Gateway.Stop(g.cfg.Name, StopFailed) })
		}
		n.withdraw(g, g.sess)
		n.emit(Event{Kind: Released, Group: g.cfg.Name, Reason: "start failed: " + err.Error()})
		return
	}
	g.state, g.since = owner, done
	g.lastWrite.Store(0)
	rec := TakeoverRecord{Group: g.cfg.Name, From: prev.Owner, To: n.cfg.Node, At: done,
		Handover: !prev.StoppedAt.IsZero(), Duration: done.Sub(g.detected)}
	if rec.Handover {
		rec.Gap = done.Sub(prev.StoppedAt)
	}
	if !prev.Written.IsZero() {
		rec.CheckpointAge = done.Sub(prev.Written)
	}
	n.takeovers = append(n.takeovers, rec)
	if len(n.takeovers) > maxTakeovers {
		n.takeovers = n.takeovers[1:]
	}
	kind := "failover"
	if rec.Handover {
		kind = "handover"
	}
	n.metrics.takeovers.WithLabelValues(kind).Observe(rec.Duration.Seconds())
	n.emit(Event{Kind: Acquired, Group: g.cfg.Name, From: prev.Owner, Handover: rec.Handover, Duration: rec.Duration})
	key, rev, ctx, w := g.key, g.rev, g.octx, &writeState{}
	g.ckpt = checkpoint.NewCheckpointer(checkpoint.Config{Clock: n.cfg.Clock, Period: n.cfg.CheckpointPeriod,
		Logger: n.log.With("group", g.cfg.Name),
		Source: func() ([]checkpoint.Tunnel, error) { return n.cfg.Gateway.Export(g.cfg.Name) },
		Sink: func(s *checkpoint.State) error {
			err := n.writeGroup(ctx, g, w, key, rev, s)
			if errors.Is(err, errDeposed) {
				n.post(func() { n.deposed(g, gen, "etcd refused the guarded write") })
			}
			return err
		}})
	ck := g.ckpt
	go func() { // the first checkpoint at once: the records name this owner
		_ = ck.Checkpoint()
		ck.Start()
	}()
}

// deposed stops a group whose election key is gone. Node.mu is held.
func (n *Node) deposed(g *group, gen uint64, why string) {
	if g.gen.Load() != gen {
		return
	}
	if g.endOwnership() {
		n.later(func() { n.cfg.Gateway.Stop(g.cfg.Name, StopDeposed) })
		n.emit(Event{Kind: WriteRefused, Group: g.cfg.Name, Reason: why})
		n.emit(Event{Kind: Released, Group: g.cfg.Name, Reason: "deposed: " + why})
	}
	g.reset()
}

// handOver hands an owned group to the node designated for it: a final
// checkpoint, Stop, then one guarded transaction that records the stop
// and deletes the election key, which lets the successor's campaign win.
func (n *Node) handOver(ctx context.Context, g *group, why StopReason) {
	n.mu.Lock()
	if g.state != owner && g.state != handingOver {
		n.mu.Unlock()
		return
	}
	g.state = handingOver
	ck, key, rev, gen := g.ckpt, g.key, g.rev, g.gen.Load()
	n.mu.Unlock()
	ck.Stop()
	if err := ck.Checkpoint(); err != nil {
		n.log.Warn("final checkpoint failed; the successor resumes from the last one", "group", g.cfg.Name, "err", err)
	}
	n.mu.Lock()
	stop := g.gen.Load() == gen && g.endOwnership()
	n.mu.Unlock()
	if !stop {
		return // fenced or deposed meanwhile: Stop has been called
	}
	n.cfg.Gateway.Stop(g.cfg.Name, why)
	stopped := n.cfg.Clock.Now()
	n.emit(Event{Kind: Released, Group: g.cfg.Name, Reason: why.String()})
	st := ck.Status()
	meta := groupMeta{Owner: n.cfg.Node, Written: st.LastWrite, Period: st.Period, Latency: st.MaxLatency,
		Tunnels: st.Tunnels, StoppedAt: stopped}
	if err := n.resign(ctx, g.cfg.Name, key, rev, meta); err != nil {
		n.log.Warn("resign failed; the lease will free the group", "group", g.cfg.Name, "err", err)
	}
	n.mu.Lock()
	if g.state == handingOver {
		g.reset()
	}
	n.mu.Unlock()
	if ctx.Err() == nil && n.ctx.Err() == nil {
		n.post(n.refreshView)
	}
}
