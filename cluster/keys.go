package cluster

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The keyspace under Config.Prefix (P):
//
//	P nodes/NODE             nodeRecord (JSON), on the node's lease
//	P election/GROUP/LEASE   the group's election (concurrency.Election):
//	                         the lowest create revision owns the group;
//	                         value: the node's name; on the node's lease
//	P state/GROUP/TUNNEL     the tunnel's checkpoint: a checkpoint.State of
//	                         one tunnel, sealed with the cluster key
//	                         (checkpoint.KindTunnel, the key as context)
//	P meta/GROUP             groupMeta (JSON): the last owner's checkpoint
//	                         time and schedule, and its stop on a handover
//	P keycheck               a fixed text sealed with the cluster key: a
//	                         node with another key refuses to join
//
// Nothing but the sealed records holds SA or IKE state, and they hold it
// encrypted; names, addresses of nodes and times are in the clear.

func (n *Node) nodesPrefix() string            { return n.cfg.Prefix + "nodes/" }
func (n *Node) nodeKey(name string) string     { return n.nodesPrefix() + name }
func (n *Node) electionsPrefix() string        { return n.cfg.Prefix + "election/" }
func (n *Node) electionPrefix(g string) string { return n.electionsPrefix() + g }
func (n *Node) stateKey(g, tunnel string) string {
	return n.cfg.Prefix + "state/" + g + "/" + tunnel
}
func (n *Node) statePrefix(g string) string { return n.cfg.Prefix + "state/" + g + "/" }
func (n *Node) metaKey(g string) string     { return n.cfg.Prefix + "meta/" + g }
func (n *Node) keyCheckKey() string         { return n.cfg.Prefix + "keycheck" }

// electionKey is the key concurrency.Election.Campaign makes for a lease:
// known in advance, so that a campaign cut short can always be undone.
func (n *Node) electionKey(g string, lease clientv3.LeaseID) string {
	return fmt.Sprintf("%s/%x", n.electionPrefix(g), int64(lease))
}

// groupOfElectionKey returns the group of an election key, or "".
func (n *Node) groupOfElectionKey(key string) string {
	rest, ok := strings.CutPrefix(key, n.electionsPrefix())
	if !ok {
		return ""
	}
	g, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return g
}

// nodeRecord is a node's entry in the cluster.
type nodeRecord struct {
	Name     string    `json:"name"`
	Draining bool      `json:"draining,omitempty"`
	Since    time.Time `json:"since"`
}

// groupMeta is what the owner writes beside a group's records.
type groupMeta struct {
	Owner   string        `json:"owner"`
	Written time.Time     `json:"written"`
	Period  time.Duration `json:"period"`
	Latency time.Duration `json:"latency"`
	Tunnels int           `json:"tunnels"`
	// StoppedAt is set by an owner that handed the group over, once it
	// had stopped: its successor starts from a final checkpoint.
	StoppedAt time.Time `json:"stopped_at,omitzero"`
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only fixed, marshalable types come here
	}
	return string(b)
}
