package cluster

import (
	"context"
	"time"

	"github.com/ismgw/ism/checkpoint"
)

// Gateway is what the cluster needs of the line card: the state of a
// tunnel group's tunnels for checkpoints, and starting and stopping the
// group on this node. ism's Gateway implements it; cmd/ismd hands it to
// New. The cluster never imports ism, and a gateway without a cluster
// configuration never creates a Node, so it runs no etcd code.
//
// The cluster calls Export, Start and Stop for one group from one
// goroutine at a time, with one exception: Stop may come, from the
// fencing timer, while Start for the same group is still running.
type Gateway interface {
	// Export returns the state of the group's tunnels, each SA with
	// its sequence number, replay window and lifetime used from a
	// consistent snapshot (offload.SA.Snapshot) and its keys in fresh
	// memory, which the cluster zeroes once sealed. It is called once
	// per checkpoint period for every group this node owns, and once
	// more before a handover.
	Export(group string) ([]checkpoint.Tunnel, error)

	// Start makes this node the group's owner: add the VIP to its
	// transport VR and announce it (gratuitous ARP, unsolicited
	// neighbour advertisement), install the SAs of t.Tunnels resuming
	// past their margins (checkpoint.Plan with t.Policy), hand the IKE
	// SAs to their daemons, and start the tunnels. ctx is cancelled
	// when ownership ends. Before sending from the VIP, the data path
	// checks t.Valid (an atomic load and a clock read), so that even a
	// process paused past its fencing deadline sends nothing after it.
	Start(ctx context.Context, t Takeover) error

	// Stop ends ownership: after it returns, nothing leaves the VIP
	// (ESP, IKE, ARP) and the VIP is removed. It must return within the
	// fencing margin (Config.FenceMargin), never wait on the network,
	// and take effect even while Start for the group still runs.
	Stop(group string, why StopReason)
}

// Takeover is what Start gets: the group and what its last owner
// checkpointed.
type Takeover struct {
	Group Group
	// Tunnels are the records of the group's tunnels in etcd, none for a
	// group never owned before. Start must zero them when done.
	Tunnels []checkpoint.Tunnel
	// Written is when each record was taken, by tunnel name (the
	// writer's clock): a resumed SA's lifetime used grows by the time
	// since.
	Written map[string]time.Time
	// Policy is the margin policy: the writer's checkpoint period and
	// write latency, plus the lease TTL, the longest a fenced owner
	// could have sent after its last write.
	Policy checkpoint.Policy
	// Previous is the node that owned the group, "" if none did.
	Previous string
	// Handover says the previous owner handed the group over (drain,
	// rebalance, shutdown): it stopped before this node started.
	// Otherwise the previous owner was lost (failover).
	Handover bool
	// Valid reports whether this node may still send from the VIP.
	Valid func() bool
}

// StopReason says why a group stops on this node.
type StopReason uint8

// Reasons to stop.
const (
	// StopHandover: a drain or a rebalance moves the group to another
	// node, which starts once this one has stopped.
	StopHandover StopReason = iota
	// StopFenced: the node's lease could not be renewed in time; another
	// node may win the group once the lease expires.
	StopFenced
	// StopDeposed: etcd refused the owner's write or removed its
	// election key: another node may already own the group.
	StopDeposed
	// StopShutdown: the node is leaving the cluster.
	StopShutdown
	// StopFailed: Start returned an error; the node gives the group up.
	StopFailed
)

func (r StopReason) String() string {
	return [...]string{"handover", "fenced", "deposed", "shutdown", "start-failed"}[r]
}
