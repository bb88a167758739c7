package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/ismgw/ism/checkpoint"
)

// Errors of joining the cluster.
var (
	ErrNameInUse  = errors.New("cluster: node name in use by another lease")
	ErrClusterKey = errors.New("cluster: the cluster's records are sealed with another key")
	// errSlowJoin: the lease's fence had run out by the time it was
	// registered; join tries again.
	errSlowJoin = errors.New("cluster: slow join")
)

// session is one lease of this node and what hangs off it: the
// concurrency session its elections use, and a context that ends the
// keepalive loop, the watches and the campaigns when the lease is given
// up.
type session struct {
	lease  clientv3.LeaseID
	ttl    time.Duration
	cs     *concurrency.Session
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

// establish grants a lease, registers this node under it and checks the
// cluster key. The fence starts from the moment the grant was sent.
func (n *Node) establish(ctx context.Context) (*session, error) {
	ttl := int64(n.cfg.TTL / time.Second)
	sent := n.cfg.Clock.Now()
	gctx, cancel := context.WithTimeout(ctx, n.cfg.TTL)
	defer cancel()
	g, err := n.cli.Grant(gctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("cluster: lease: %w", err)
	}
	s := &session{lease: g.ID, ttl: time.Duration(g.TTL) * time.Second}
	// The session outlives Run's context, so that leaving can still
	// hand groups over; leave and fenceNow end it. It keeps the lease
	// alive too (the client's KeepAlive stream, every TTL/3): renewals
	// the fence does not count only make the lease outlive the fence
	// longer, never shorter.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.cs, err = concurrency.NewSession(n.cli, concurrency.WithLease(g.ID), concurrency.WithContext(s.ctx))
	if err == nil {
		err = n.checkKey(gctx)
	}
	if err == nil {
		err = n.register(gctx, s)
	}
	if err != nil {
		n.release(s)
		return nil, err
	}
	n.checkMembers(gctx)
	if late := n.cfg.Clock.Now().Sub(sent); late >= s.ttl-n.cfg.FenceMargin {
		n.release(s)
		return nil, fmt.Errorf("%w: joining took %v, past the fence (TTL %v less the margin)", errSlowJoin, late.Round(time.Millisecond), s.ttl)
	}
	n.fence.start(sent, s.ttl)
	return s, nil
}

// register puts this node's record on the lease, refusing a name held
// under another lease (another node, or this one's lost lease, which
// expires within a TTL).
func (n *Node) register(ctx context.Context, s *session) error {
	n.mu.Lock()
	rec := nodeRecord{Name: n.cfg.Node, Draining: n.draining, Since: n.cfg.Clock.Now()}
	n.mu.Unlock()
	k := n.nodeKey(n.cfg.Node)
	r, err := n.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, mustJSON(rec), clientv3.WithLease(s.lease))).
		Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return fmt.Errorf("cluster: register: %w", err)
	}
	if !r.Succeeded {
		kv := r.Responses[0].GetResponseRange().Kvs
		if len(kv) == 1 && clientv3.LeaseID(kv[0].Lease) != s.lease {
			return fmt.Errorf("%w: %s (lease %x)", ErrNameInUse, n.cfg.Node, kv[0].Lease)
		}
	}
	return nil
}

// putRecord rewrites this node's record (draining or not) on its lease.
func (n *Node) putRecord(ctx context.Context, s *session, draining bool) error {
	rec := nodeRecord{Name: n.cfg.Node, Draining: draining, Since: n.cfg.Clock.Now()}
	_, err := n.cli.Put(ctx, n.nodeKey(n.cfg.Node), mustJSON(rec), clientv3.WithLease(s.lease))
	return err
}

// keyCheckText is sealed under the cluster key at P keycheck.
const keyCheckText = "ism cluster key check v1"

// checkKey makes sure this node's cluster key is the cluster's: the first
// node seals a fixed text with it; the others must open it.
func (n *Node) checkKey(ctx context.Context) error {
	k := n.keyCheckKey()
	env, err := n.cfg.Key.Seal(checkpoint.KindCheck, []byte(keyCheckText), []byte(k))
	if err != nil {
		return err
	}
	r, err := n.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(env))).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return fmt.Errorf("cluster: key check: %w", err)
	}
	if r.Succeeded {
		return nil
	}
	kv := r.Responses[0].GetResponseRange().Kvs
	if len(kv) != 1 {
		return fmt.Errorf("%w: key check vanished", ErrClusterKey)
	}
	if _, err := n.cfg.Key.Open(checkpoint.KindCheck, kv[0].Value, []byte(k)); err != nil {
		return fmt.Errorf("%w: %w", ErrClusterKey, err)
	}
	return nil
}

// release ends a session: its keepalives, watches and campaigns stop, and
// the lease is revoked in the background (if etcd cannot be reached, it
// expires within its TTL).
func (n *Node) release(s *session) {
	s.once.Do(func() {
		s.cancel()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.ttl)
			defer cancel()
			_, _ = n.cli.Revoke(ctx, s.lease)
		}()
	})
}

// keepalive renews the lease every quarter TTL with single requests
// timed from when each was sent, moving the fence. When a renewal fails
// it probes the members: if every one refuses connections or answers
// that it does not lead, no leader exists that could expire the lease
// before one elected after the probe began, which extends it; the probe
// then holds the fence as a renewal sent when it began would. It ends
// with the session, or when the lease is gone.
func (n *Node) keepalive(s *session) {
	every := s.ttl / 4
	timeout := every
	for {
		sent := n.cfg.Clock.Now()
		ctx, cancel := context.WithTimeout(s.ctx, timeout)
		r, err := n.cli.KeepAliveOnce(ctx, s.lease)
		cancel()
		wait := every
		switch {
		case s.ctx.Err() != nil:
			return
		case err == nil && r.TTL > 0:
			if !n.fence.renewed(sent, time.Duration(r.TTL)*time.Second) {
				return // too late: the fence has fired
			}
			n.etcdUp()
			timeout = every
		case errors.Is(err, rpctypes.ErrLeaseNotFound) || err == nil:
			n.log.Warn("lease gone", "lease", fmt.Sprintf("%x", int64(s.lease)))
			n.fenceNow("lease expired in etcd")
			return
		default:
			// Retry at once, with a shorter wait for the answer, and
			// probe the members meanwhile.
			p := n.cfg.Clock.Now()
			states := n.probe(s.ctx)
			n.log.Debug("renewal failed", "err", err, "members", states)
			hold := n.down(states) && n.fence.renewed(p, s.ttl+n.cfg.EtcdElectionTimeout)
			n.etcdDown(states, hold)
			wait, timeout = 0, every/2
		}
		if !sleep(s.ctx, n, wait-n.cfg.Clock.Now().Sub(sent)) {
			return
		}
	}
}

// Endpoint states a probe finds.
const (
	epLeader   = "leader"   // it leads a quorum, or thinks it does
	epFollower = "follower" // running, and not the leader (it may know none)
	epRefused  = "refused"  // nothing listens: the member is not running
	epUnknown  = "unknown"  // no answer: it may be running, cut off from this node
)

// probe asks each member whether it runs and whether it leads.
func (n *Node) probe(ctx context.Context) map[string]string {
	out := make(map[string]string, len(n.cfg.Endpoints))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ep := range n.cfg.Endpoints {
		wg.Go(func() {
			st := n.probeOne(ctx, ep)
			mu.Lock()
			out[ep] = st
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func (n *Node) probeOne(ctx context.Context, ep string) string {
	u, err := url.Parse(ep)
	if err != nil {
		return epUnknown
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.TTL/4)
	defer cancel()
	conn, err := n.dial(ctx, u.Host)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return epRefused
		}
		return epUnknown
	}
	conn.Close()
	st, err := n.cli.Status(ctx, ep)
	switch {
	case err != nil:
		return epUnknown
	case st.Leader == st.Header.MemberId:
		return epLeader
	}
	return epFollower
}

// down reports whether the probe proves that no member led at its probe
// instant: each refused, or answered that it was not the leader. Then any
// leader after the probe began is elected after it, and extends every
// lease to at least then plus their TTL (see the package documentation).
// It needs the probe to have reached every member of the cluster.
func (n *Node) down(states map[string]string) bool {
	n.mu.Lock()
	complete := n.allMembers
	n.mu.Unlock()
	if !complete || len(states) == 0 {
		return false
	}
	for _, s := range states {
		if s != epRefused && s != epFollower {
			return false
		}
	}
	return true
}

// checkMembers makes sure the endpoints name every member, which the
// probe's proof needs; if they do not, etcd's absence is never taken for
// proof that no quorum exists.
func (n *Node) checkMembers(ctx context.Context) {
	r, err := n.cli.MemberList(ctx)
	if err != nil {
		return
	}
	known := map[string]bool{}
	for _, ep := range n.cfg.Endpoints {
		known[ep] = true
	}
	complete := true
	for _, m := range r.Members {
		in := false
		for _, u := range m.ClientURLs {
			in = in || known[u]
		}
		if !in {
			complete = false
			n.log.Warn("etcd member not among the endpoints: owners fence whenever etcd is unreachable", "member", m.Name, "urls", m.ClientURLs)
		}
	}
	n.mu.Lock()
	n.allMembers = complete
	n.mu.Unlock()
}

// sleep waits d on the node's clock, or until ctx ends (false).
func sleep(ctx context.Context, n *Node, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	ch := make(chan struct{})
	t := n.cfg.Clock.AfterFunc(d, func() { close(ch) })
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}
