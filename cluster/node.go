package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Node is this gateway's membership in the cluster: its lease, its
// campaigns, the groups it owns and their checkpoints. Make one with New
// and run it with Run. A Node is safe for concurrent use.
//
// One goroutine (Run's) owns the decisions: every change of a group's
// state happens there, under mu. Network calls never run under mu; they
// run on goroutines of their own and post their outcome back (post). The
// fence fires on the clock's goroutine and stops the groups directly.
type Node struct {
	cfg     Config
	log     *slog.Logger
	cli     *clientv3.Client
	fence   *fence
	groups  map[string]*group
	weights map[string]int
	work    chan func()
	ctx     context.Context
	metrics *metrics
	// fencedCount counts fences, for metrics.
	fencedCount atomic.Uint64

	mu       sync.Mutex
	sess     *session
	joining  bool // a goroutine is establishing a session
	joinErr  string
	draining bool
	// allMembers: the endpoints name every etcd member (checkMembers).
	allMembers bool
	view       view
	refresh    refreshState
	etcd       EtcdStatus
	takeovers  []TakeoverRecord
	pending    []func() // run by Run's goroutine after it lets go of mu
}

// New checks the configuration and makes a Node; it does not contact etcd
// yet.
func New(cfg Config) (*Node, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Node), groups: map[string]*group{},
		weights: map[string]int{}, work: make(chan func(), 64)}
	for _, g := range cfg.Groups {
		n.groups[g.Name] = &group{cfg: g}
		n.weights[g.Name] = g.weight()
	}
	n.metrics = newMetrics(n)
	n.fence = newFence(cfg.Clock, cfg.FenceMargin, func() { n.fenceNow("lease not renewed in time") })
	cc := clientv3.Config{Endpoints: cfg.Endpoints, TLS: cfg.TLS, Logger: zap.NewNop(),
		DialTimeout: cfg.TTL / 2, DialKeepAliveTime: cfg.TTL / 2, DialKeepAliveTimeout: cfg.TTL / 4,
		PermitWithoutStream: true}
	// Reconnect within a quarter TTL when etcd comes back, not after
	// gRPC's default backoff of up to two minutes: a lease outlives an
	// etcd restart by only a TTL and an election timeout.
	cc.DialOptions = []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: cfg.TTL / 4},
		MinConnectTimeout: cfg.TTL / 4})}
	if cfg.Dialer != nil {
		cc.DialOptions = append(cc.DialOptions, grpc.WithContextDialer(cfg.Dialer))
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd client: %w", err)
	}
	n.cli = cli
	return n, nil
}

// dial opens a TCP connection as the etcd client does.
func (n *Node) dial(ctx context.Context, addr string) (net.Conn, error) {
	if n.cfg.Dialer != nil {
		return n.cfg.Dialer(ctx, addr)
	}
	return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
}

// Run joins the cluster and takes part in it until ctx ends; then it
// hands its groups over (final checkpoint, Stop, resign), leaves and
// closes the client. It returns nil after a clean leave.
func (n *Node) Run(ctx context.Context) error {
	n.ctx = ctx
	n.mu.Lock()
	n.join()
	n.mu.Unlock()
	go func() { // a refresh each TTL, in case a watch missed something
		for sleep(ctx, n, n.cfg.TTL) {
			n.post(n.refreshView)
		}
	}()
	for {
		select {
		case f := <-n.work:
			n.mu.Lock()
			f()
			after := n.pending
			n.pending = nil
			n.mu.Unlock()
			for _, f := range after {
				f()
			}
		case <-ctx.Done():
			return n.leave()
		}
	}
}

// post hands f to Run's goroutine, which runs it under mu.
func (n *Node) post(f func()) {
	select {
	case n.work <- f:
	case <-n.ctx.Done():
	}
}

// later runs f on Run's goroutine once mu is free: calls into the
// gateway from decisions taken under mu. Node.mu is held.
func (n *Node) later(f func()) { n.pending = append(n.pending, f) }

// join starts establishing a session unless one exists or is on its
// way; mu is held.
func (n *Node) join() {
	if n.sess != nil || n.joining || n.ctx.Err() != nil {
		return
	}
	n.joining = true
	go func() {
		for {
			s, err := n.establish(n.ctx)
			if err == nil {
				n.post(func() { n.sessionUp(s) })
				return
			}
			if n.ctx.Err() != nil {
				return
			}
			n.log.Warn("cannot join the cluster", "err", err)
			n.mu.Lock()
			n.joinErr = err.Error()
			n.mu.Unlock()
			if !sleep(n.ctx, n, n.cfg.TTL/4) {
				return
			}
		}
	}()
}

// sessionUp starts using a new session; mu is held. A session whose
// fence ran out between establish and now (a slow join: establish's
// requests, then this call waiting its turn) is given up for a new one:
// the fence's firing found no session to end, and the session's
// keepalive would stop at its first renewal (too late), leaving a lease
// held that this node never acts on.
func (n *Node) sessionUp(s *session) {
	n.joining, n.joinErr = false, ""
	if n.ctx.Err() != nil {
		n.release(s)
		return
	}
	if !n.fence.valid() {
		n.log.Warn("the new lease's fence ran out while joining: joining again", "lease", fmt.Sprintf("%x", int64(s.lease)))
		n.fence.stop()
		n.release(s)
		n.join()
		return
	}
	n.sess = s
	n.log.Info("joined the cluster", "lease", fmt.Sprintf("%x", int64(s.lease)), "ttl", s.ttl)
	go n.keepalive(s)
	go n.watch(s)
	n.refreshView()
}

// fenceNow stops every group this node owns, at once, and gives up the
// session; a new one is sought. It runs on the fence timer's goroutine
// (or the keepalive's, when etcd says the lease is gone).
func (n *Node) fenceNow(why string) {
	n.fence.stop()
	n.mu.Lock()
	var stop []*group
	for _, g := range n.groups {
		if g.endOwnership() {
			stop = append(stop, g)
		}
		g.reset()
	}
	s := n.sess
	n.sess = nil
	n.mu.Unlock()
	for _, g := range stop {
		n.cfg.Gateway.Stop(g.cfg.Name, StopFenced)
		n.emit(Event{Kind: Released, Group: g.cfg.Name, Reason: "fenced: " + why})
	}
	n.fencedCount.Add(1)
	n.log.Warn("fenced", "why", why, "groups", len(stop))
	n.emit(Event{Kind: Fenced, Reason: why})
	if s != nil {
		n.release(s)
	}
	n.post(func() { n.join() })
}

// emit sends an event.
func (n *Node) emit(e Event) {
	e.At, e.Node = n.cfg.Clock.Now(), n.cfg.Node
	n.cfg.Events(e)
}

// ErrNoSurvivor says a drain has no other node to hand groups to.
var ErrNoSurvivor = errors.New("cluster: no other node can take the groups")

// Drain marks this node as draining, so that its groups move to the other
// nodes, each by a handover (final checkpoint, Stop here, Start there),
// and returns once it owns none and etcd shows each with its new owner. The node stays in the cluster
// and takes no group until Undrain.
func (n *Node) Drain(ctx context.Context) error {
	if err := n.setDraining(ctx, true); err != nil {
		return err
	}
	for {
		n.mu.Lock()
		owned, others := 0, 0
		for name, g := range n.groups {
			if c, ok := n.view.owner(name); g.state != idle || ok && c.node == n.cfg.Node {
				owned++
			}
		}
		for name, r := range n.view.nodes {
			if name != n.cfg.Node && !r.Draining {
				others++
			}
		}
		n.mu.Unlock()
		if owned == 0 {
			return nil
		}
		if others == 0 {
			return fmt.Errorf("%w: %d groups here", ErrNoSurvivor, owned)
		}
		if !sleep(ctx, n, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// Undrain lets this node take groups again.
func (n *Node) Undrain(ctx context.Context) error { return n.setDraining(ctx, false) }

func (n *Node) setDraining(ctx context.Context, d bool) error {
	n.mu.Lock()
	n.draining = d
	s := n.sess
	n.mu.Unlock()
	if s == nil {
		return nil // the record is written so when the node joins
	}
	if err := n.putRecord(ctx, s, d); err != nil {
		return fmt.Errorf("cluster: drain: %w", err)
	}
	n.post(func() { n.refreshView() })
	return nil
}

// leave hands every owned group over and leaves the cluster.
func (n *Node) leave() error {
	n.mu.Lock()
	s := n.sess
	var owned []*group
	for _, g := range n.groups {
		if g.state == owner {
			owned = append(owned, g)
		}
	}
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.TTL)
	defer cancel()
	var wg sync.WaitGroup
	for _, g := range owned {
		wg.Go(func() { n.handOver(ctx, g, StopShutdown) })
	}
	wg.Wait()
	n.fence.stop()
	n.mu.Lock()
	for _, g := range n.groups {
		if g.endOwnership() {
			n.cfg.Gateway.Stop(g.cfg.Name, StopShutdown)
		}
		g.reset()
	}
	n.sess = nil
	n.mu.Unlock()
	if s != nil {
		s.cancel()
		_, _ = n.cli.Revoke(ctx, s.lease)
	}
	return n.cli.Close()
}
