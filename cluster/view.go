package cluster

import (
	"context"
	"encoding/json"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// view is the cluster as one read of etcd saw it: the nodes, and each
// group's candidates in election order (the first owns it).
type view struct {
	rev   int64
	nodes map[string]nodeRecord
	queue map[string][]candidate // by group, lowest create revision first
}

// candidate is one election key.
type candidate struct {
	node  string
	lease clientv3.LeaseID
	rev   int64
}

// owner returns the group's owner, if any.
func (v *view) owner(g string) (candidate, bool) {
	q := v.queue[g]
	if len(q) == 0 {
		return candidate{}, false
	}
	return q[0], true
}

// queued reports whether node campaigns for g.
func (v *view) queued(g, node string) bool {
	for _, c := range v.queue[g] {
		if c.node == node {
			return true
		}
	}
	return false
}

// refreshState coalesces view refreshes: one read at a time.
type refreshState struct{ running, again bool }

// refreshView reads the nodes and elections at one revision, then
// reconciles. Node.mu is held.
func (n *Node) refreshView() {
	s := n.sess
	if s == nil {
		return
	}
	if n.refresh.running {
		n.refresh.again = true
		return
	}
	n.refresh.running = true
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, n.cfg.TTL)
		r, err := n.cli.Txn(ctx).Then(
			clientv3.OpGet(n.nodesPrefix(), clientv3.WithPrefix()),
			clientv3.OpGet(n.electionsPrefix(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)),
		).Commit()
		cancel()
		n.post(func() {
			n.refresh.running = false
			if err == nil && n.sess == s {
				n.view = n.parseView(r)
				n.reconcile()
			}
			if err != nil {
				n.log.Debug("cluster view read failed; the next periodic read tries again", "err", err)
			}
			if n.refresh.again {
				n.refresh.again = false
				n.refreshView()
			}
		})
	}()
}

func (n *Node) parseView(r *clientv3.TxnResponse) view {
	v := view{rev: r.Header.Revision, nodes: map[string]nodeRecord{}, queue: map[string][]candidate{}}
	for _, kv := range r.Responses[0].GetResponseRange().Kvs {
		var rec nodeRecord
		if json.Unmarshal(kv.Value, &rec) == nil {
			v.nodes[strings.TrimPrefix(string(kv.Key), n.nodesPrefix())] = rec
		}
	}
	for _, kv := range r.Responses[1].GetResponseRange().Kvs {
		if g := n.groupOfElectionKey(string(kv.Key)); g != "" {
			v.queue[g] = append(v.queue[g], candidate{node: string(kv.Value), lease: clientv3.LeaseID(kv.Lease), rev: kv.CreateRevision})
		}
	}
	return v
}

// watch refreshes the view on every change of the nodes or the
// elections, and every TTL besides, until the session ends. The periodic
// read is the backstop for a read that failed (etcd slow) or a decision
// that could not be taken when its event came (the fence not yet valid at
// the first read of a new session, say), which would otherwise wait for
// the next change: a settled cluster has none.
func (n *Node) watch(s *session) {
	go func() {
		for sleep(s.ctx, n, n.cfg.TTL) {
			n.post(n.refreshView)
		}
	}()
	for s.ctx.Err() == nil {
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(s.ctx))
		nodes := n.cli.Watch(ctx, n.nodesPrefix(), clientv3.WithPrefix())
		elections := n.cli.Watch(ctx, n.electionsPrefix(), clientv3.WithPrefix())
		for ok := true; ok; {
			var r clientv3.WatchResponse
			select {
			case r, ok = <-nodes:
			case r, ok = <-elections:
			case <-s.ctx.Done():
				ok = false
			}
			if ok && r.Err() != nil {
				ok = false
			}
			if ok {
				n.post(n.refreshView)
			}
		}
		cancel()
		if !sleep(s.ctx, n, n.cfg.TTL/4) {
			return
		}
		n.post(n.refreshView)
	}
}

// reconcile compares the view with the assignment and acts: campaign for
// the groups designated here, withdraw from the others, hand over an owned
// group once its designated node campaigns for it, and stop a group whose
// election key is gone. Node.mu is held.
func (n *Node) reconcile() {
	s := n.sess
	if s == nil || !n.fence.valid() {
		return
	}
	var eligible []string
	for name, r := range n.view.nodes {
		if !r.Draining {
			eligible = append(eligible, name)
		}
	}
	owners := map[string]string{}
	for g := range n.view.queue {
		if c, ok := n.view.owner(g); ok {
			owners[g] = c.node
		}
	}
	want := assign(n.weights, eligible, owners)
	for name, g := range n.groups {
		d := want[name]
		switch g.state {
		case idle:
			switch {
			case n.ownKey(name, s):
				n.withdraw(g, s) // a key of ours with no campaign behind it
			case d == n.cfg.Node:
				n.campaign(g)
			}
		case campaigning:
			if d != n.cfg.Node && g.cancel != nil {
				g.cancel()
			}
		case owner:
			// g.rev is when this node's key was created, not when the
			// keys before it went and the campaign won: a view read
			// between the two, taken up after the win, still has the
			// old owner first. Only the key's absence deposes (no key
			// created later can come before it).
			switch {
			case n.view.rev >= g.rev && !n.ownKey(name, s):
				n.deposed(g, g.gen.Load(), "election key gone")
			case d != "" && d != n.cfg.Node && n.view.queued(name, d):
				g.state = handingOver
				go n.handOver(context.Background(), g, StopHandover)
			}
		}
	}
}

// ownKey reports whether the view holds this session's key for g.
func (n *Node) ownKey(g string, s *session) bool {
	for _, c := range n.view.queue[g] {
		if c.lease == s.lease {
			return true
		}
	}
	return false
}
