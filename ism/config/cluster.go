package config

import (
	"net/netip"
	"time"
)

// Checkpoint is where and how often the daemon checkpoints its SAs, so that
// a restarted gateway resumes its tunnels (the checkpoint commands). Zero
// fields take the defaults of package checkpoint: the state directory
// /var/lib/ism, the machine key /etc/ism/checkpoint.key, a second.
type Checkpoint struct {
	StateDir string
	// KeyFile is the operator's wrapping key; "" is the machine's.
	KeyFile string
	// Interval is the checkpoint period; Off turns checkpoints off
	// ("checkpoint interval 0").
	Interval time.Duration
	Off      bool
	// Lines of the commands, for errors found when the daemon opens the
	// files (0: not in the file).
	StateDirLine, KeyFileLine int
}

// Cluster is the node's membership of an ISM cluster on etcd (the cluster
// commands). The zero value (Node "") is no cluster. Zero durations take
// the defaults of package cluster.
type Cluster struct {
	Node string
	// Endpoints are the etcd members' client URLs (https://HOST:PORT).
	Endpoints []string
	// CA, Cert and Key are the files of etcd's client TLS: the CA that
	// signed the members' certificates, this node's certificate and key.
	CA, Cert, Key string
	// VR is the virtual router etcd is reached from.
	VR VR
	// ElectionTimeout is etcd's --election-timeout, if the operator says
	// it (0: unknown).
	ElectionTimeout time.Duration
	TTL             time.Duration
	FenceMargin     time.Duration
	// KeyFile is the cluster key that seals the records in etcd, the
	// same on every node.
	KeyFile string
	Groups  []ClusterGroup
	// Lines of the commands that name files, for errors found when the
	// daemon reads them.
	NodeLine, CALine, CertLine, KeyFileLine int
}

// ClusterGroup is a tunnel group: tunnels that one node at a time owns,
// with the virtual address their peers know it by.
type ClusterGroup struct {
	Name        string
	TransportVR VR
	// VIP is the virtual address, with the prefix length of the
	// transport VR's network it goes on.
	VIP     netip.Prefix
	Tunnels []string
	Pos     Pos
}

// Group returns the cluster group of a tunnel, or nil.
func (c *Config) Group(tunnel string) *ClusterGroup {
	for i := range c.Cluster.Groups {
		for _, t := range c.Cluster.Groups[i].Tunnels {
			if t == tunnel {
				return &c.Cluster.Groups[i]
			}
		}
	}
	return nil
}

// Limits of the cluster and checkpoint commands.
const (
	MinCheckpointInterval = 100 * time.Millisecond
	MaxCheckpointInterval = time.Minute
	MaxLeaseTTL           = 60 * time.Second
)
