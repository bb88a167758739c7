package cluster

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// maxTakeovers is how many takeovers Status remembers.
const maxTakeovers = 32

// Status is what `show cluster` prints: this node, its lease and etcd,
// the nodes, the groups with their owners and checkpoints, and the last
// takeovers this node made.
type Status struct {
	Node      string
	Lease     LeaseStatus
	Etcd      EtcdStatus
	Nodes     []NodeStatus
	Groups    []GroupStatus
	Takeovers []TakeoverRecord
}

// LeaseStatus is this node's lease.
type LeaseStatus struct {
	ID  int64
	TTL time.Duration
	// State: "held", "joining" (no lease yet, or seeking a new one after
	// being fenced).
	State string
	// Deadline is when this node stops owning groups unless the lease is
	// renewed (the fence), Margin how long before the lease could expire.
	Deadline time.Time
	Margin   time.Duration
	// Error is why the last attempt to join failed, "" once joined.
	Error string
}

// EtcdStatus says whether etcd answers.
type EtcdStatus struct {
	Reachable bool
	Since     time.Time // of the current state
	// Holding: etcd is unreachable and every member refused connections
	// or answered that it did not lead, so owners keep their groups (no
	// quorum can move them).
	Holding   bool
	Endpoints map[string]string // endpoint → leader, follower, refused, unknown
}

// NodeStatus is one node of the cluster as etcd lists it.
type NodeStatus struct {
	Name     string
	Draining bool
	Groups   int // groups it owns
	Tunnels  int // their tunnels
}

// GroupStatus is one tunnel group.
type GroupStatus struct {
	Name       string
	VIP        string
	Tunnels    int
	Owner      string // "" when none
	Designated string // where balancing wants it
	Local      string // this node's state for it: idle, campaigning, owner, ...
	Since      time.Time
	// CheckpointAge is the age of the last checkpoint this node wrote
	// (owners only); Txns and Puts count the guarded transactions and
	// the keys they wrote, Refused the transactions etcd refused.
	CheckpointAge time.Duration
	Txns, Puts    uint64
	Refused       uint64
}

// TakeoverRecord is one group this node took.
type TakeoverRecord struct {
	Group, From, To string
	At              time.Time
	// Handover: the previous owner handed the group over; otherwise it
	// was lost (failover).
	Handover bool
	// Duration is from the moment this node set out to take the group
	// (it saw it without an owner, or was designated for it) to Start's
	// return; Gap, for a handover, from the previous owner's Stop to
	// Start's return; CheckpointAge, from the previous owner's last
	// checkpoint to Start's return, bounds a failover's outage from above
	// by a period (both with two nodes' clocks).
	Duration, Gap, CheckpointAge time.Duration
}

// etcdUp records a renewal that etcd answered.
func (n *Node) etcdUp() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.etcd.Reachable {
		n.etcd = EtcdStatus{Reachable: true, Since: n.cfg.Clock.Now()}
		n.emit(Event{Kind: EtcdReachable})
	}
}

// etcdDown records a failed renewal and what the probe found.
func (n *Node) etcdDown(states map[string]string, holding bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	was := n.etcd.Reachable || n.etcd.Since.IsZero()
	if was {
		n.etcd.Since = n.cfg.Clock.Now()
	}
	if holding && (was || !n.etcd.Holding) {
		n.emit(Event{Kind: EtcdUnreachable, Reason: "every member refuses or does not lead: owners hold"})
	}
	n.etcd.Reachable, n.etcd.Holding, n.etcd.Endpoints = false, holding, states
}

// Status returns the node's view of the cluster.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{Node: n.cfg.Node, Etcd: n.etcd, Takeovers: slices.Clone(n.takeovers)}
	st.Lease = LeaseStatus{State: "joining", Margin: n.cfg.FenceMargin, TTL: n.cfg.TTL, Error: n.joinErr}
	if n.sess != nil {
		st.Lease.ID, st.Lease.TTL, st.Lease.State = int64(n.sess.lease), n.sess.ttl, "held"
		st.Lease.Deadline = n.fence.deadline()
	}
	var eligible []string
	owners := map[string]string{}
	for g := range n.view.queue {
		if c, ok := n.view.owner(g); ok {
			owners[g] = c.node
		}
	}
	load := map[string]*NodeStatus{}
	for name, r := range n.view.nodes {
		load[name] = &NodeStatus{Name: name, Draining: r.Draining}
		if !r.Draining {
			eligible = append(eligible, name)
		}
	}
	want := assign(n.weights, eligible, owners)
	now := n.cfg.Clock.Now()
	for _, gc := range n.cfg.Groups {
		g := n.groups[gc.Name]
		gs := GroupStatus{Name: gc.Name, VIP: gc.VIP.String(), Tunnels: len(gc.Tunnels), Owner: owners[gc.Name],
			Designated: want[gc.Name], Local: g.state.String(), Txns: g.txns.Load(), Puts: g.puts.Load(), Refused: g.refused.Load()}
		if g.state == owner || g.state == handingOver {
			gs.Since = g.since
			if w := g.lastWrite.Load(); w != 0 {
				gs.CheckpointAge = now.Sub(time.Unix(0, w))
			}
		}
		if ns, ok := load[gs.Owner]; ok {
			ns.Groups++
			ns.Tunnels += gs.Tunnels
		}
		st.Groups = append(st.Groups, gs)
	}
	for _, ns := range load {
		st.Nodes = append(st.Nodes, *ns)
	}
	slices.SortFunc(st.Nodes, func(a, b NodeStatus) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// WriteTo prints the status as `show cluster` does.
func (s *Status) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "Cluster node %s\n", s.Node)
	fmt.Fprintf(&b, "  lease %x %s, TTL %v, fence margin %v", s.Lease.ID, s.Lease.State, s.Lease.TTL, s.Lease.Margin)
	if !s.Lease.Deadline.IsZero() {
		fmt.Fprintf(&b, ", owns until %s unless renewed", s.Lease.Deadline.Format("15:04:05.000"))
	}
	b.WriteString("\n")
	if s.Lease.Error != "" {
		fmt.Fprintf(&b, "  cannot join: %s\n", s.Lease.Error)
	}
	switch {
	case s.Etcd.Reachable:
		fmt.Fprintf(&b, "  etcd reachable\n")
	case s.Etcd.Holding:
		fmt.Fprintf(&b, "  etcd UNREACHABLE since %s: no member leads, owners hold their groups\n", s.Etcd.Since.Format("15:04:05"))
	case !s.Etcd.Since.IsZero():
		fmt.Fprintf(&b, "  etcd UNREACHABLE since %s\n", s.Etcd.Since.Format("15:04:05"))
	}
	eps := make([]string, 0, len(s.Etcd.Endpoints))
	for ep := range s.Etcd.Endpoints {
		eps = append(eps, ep)
	}
	slices.Sort(eps)
	for _, ep := range eps {
		fmt.Fprintf(&b, "    %-28s %s\n", ep, s.Etcd.Endpoints[ep])
	}
	fmt.Fprintf(&b, "Nodes\n  %-16s %-9s %6s %8s\n", "name", "state", "groups", "tunnels")
	for _, n := range s.Nodes {
		state := "active"
		if n.Draining {
			state = "draining"
		}
		fmt.Fprintf(&b, "  %-16s %-9s %6d %8d\n", n.Name, state, n.Groups, n.Tunnels)
	}
	fmt.Fprintf(&b, "Groups\n  %-16s %-20s %7s %-16s %-16s %-12s %s\n", "name", "vip", "tunnels", "owner", "designated", "here", "checkpoint")
	for _, g := range s.Groups {
		ck := "-"
		if g.CheckpointAge > 0 {
			ck = fmt.Sprintf("%v ago (%d txns, %d refused)", g.CheckpointAge.Round(time.Millisecond), g.Txns, g.Refused)
		}
		fmt.Fprintf(&b, "  %-16s %-20s %7d %-16s %-16s %-12s %s\n", g.Name, g.VIP, g.Tunnels, dash(g.Owner), dash(g.Designated), g.Local, ck)
	}
	if len(s.Takeovers) > 0 {
		b.WriteString("Takeovers by this node\n")
		for _, t := range s.Takeovers {
			kind, gap := "failover", fmt.Sprintf(", checkpoint %v old", t.CheckpointAge.Round(time.Millisecond))
			if t.Handover {
				kind, gap = "handover", fmt.Sprintf(", gap %v", t.Gap.Round(time.Millisecond))
			}
			fmt.Fprintf(&b, "  %s %-16s from %-16s %s in %v%s\n", t.At.Format("15:04:05.000"), t.Group, dash(t.From), kind, t.Duration.Round(time.Millisecond), gap)
		}
	}
	k, err := io.WriteString(w, b.String())
	return int64(k), err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
