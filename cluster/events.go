package cluster

import (
	"fmt"
	"time"
)

// EventKind is what happened.
type EventKind uint8

// Events, for SNMP traps and Prometheus.
const (
	// Acquired: this node started a group (Duration: from the moment it
	// saw the group without an owner, or the previous owner stopped, to
	// Start's return).
	Acquired EventKind = iota
	// Released: this node stopped a group (Reason says why).
	Released
	// Fenced: the lease could not be renewed in time; every group
	// stopped.
	Fenced
	// EtcdUnreachable: renewals fail, and every etcd member refuses
	// connections or answers that it does not lead: owners keep their
	// groups.
	EtcdUnreachable
	// EtcdReachable: etcd answers again.
	EtcdReachable
	// WriteRefused: etcd refused an owner's guarded checkpoint write: it
	// no longer owns the group.
	WriteRefused
)

func (k EventKind) String() string {
	return [...]string{"acquired", "released", "fenced", "etcd-unreachable", "etcd-reachable", "write-refused"}[k]
}

// Event is one ownership change.
type Event struct {
	Kind  EventKind
	At    time.Time
	Node  string // this node
	Group string // "" for node-wide events
	// From is the previous owner of an acquired group ("" if none).
	From string
	// Handover: an acquired group was handed over rather than lost.
	Handover bool
	// Duration of a takeover (Acquired), see Acquired.
	Duration time.Duration
	Reason   string
}

func (e Event) String() string {
	s := fmt.Sprintf("%s %s %s", e.At.Format(time.RFC3339Nano), e.Node, e.Kind)
	if e.Group != "" {
		s += " group " + e.Group
	}
	if e.Kind == Acquired {
		kind := "failover"
		if e.Handover {
			kind = "handover"
		}
		s += fmt.Sprintf(" from %q (%s) in %v", e.From, kind, e.Duration)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}
