// Package operator is what the operator sees of a gateway: the show and
// clear commands over a snapshot of its state, the control socket ismctl
// speaks to, and the Prometheus metrics.
package operator

import (
	"fmt"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ism/datapath"
)

// Gateway is what the commands read and act on. Its methods are safe for
// concurrent use; *ism.Gateway implements it.
type Gateway interface {
	// Snapshot returns the gateway's state now.
	Snapshot() Snapshot
	// ClearStatistics zeroes the named tunnels' counters (every tunnel's
	// and the gateway's with no names) and returns how many it cleared.
	ClearStatistics(names []string) (int, error)
}

// TunnelSnapshotter is a Gateway that can give the state of some tunnels
// only: show for named tunnels then costs what those tunnels cost, not
// every tunnel's.
type TunnelSnapshotter interface {
	// SnapshotTunnels returns a Snapshot whose Tunnels are the named ones
	// ("ipsec:" optional), in the order given, with the IKE SAs they link
	// to; it fails on a name no tunnel has.
	SnapshotTunnels(names []string) (Snapshot, error)
}

// Snapshot is a gateway's state at one moment.
type Snapshot struct {
	// Tunnels are in name order.
	Tunnels       []TunnelStatus
	TransformSets []TransformSetStatus
	Uptime        time.Duration
	// Datapaths is what the datapaths counted beyond the tunnels,
	// summed, with the fallbacks between datapaths.
	Datapaths datapath.Stats
	// IKE is nil when no IKE daemon runs.
	IKE *ike.Counters
	// IKEVersions are each IKE version's counters, by version, when the
	// daemon runs both (IKE is their sum).
	IKEVersions map[int]ike.Counters
	IKESAs      []ike.IKESAStatus
	// Traps are the SNMP trap receivers' states.
	Traps []string
	// Rings are the AF_XDP rings of raw ESP and AH, with their counters.
	Rings []string
}

// TunnelStatus is what `show ipsec tunnel` shows of a tunnel.
type TunnelStatus struct {
	Name          string    `json:"name"`
	Type          string    `json:"type"`
	Mode          string    `json:"mode"`
	State         string    `json:"state"`
	Reason        string    `json:"reason,omitempty"`
	Since         time.Time `json:"since"`
	OperationalVR string    `json:"operational_vr"`
	TransportVR   string    `json:"transport_vr"`
	Interface     string    `json:"interface"`
	Addresses     []string  `json:"addresses,omitempty"`
	MTU           int       `json:"mtu"`
	Source        string    `json:"source"`
	Destination   string    `json:"destination"`
	Backup        string    `json:"backup,omitempty"`
	Encapsulation string    `json:"encapsulation"`
	LocalSel      string    `json:"local_selector"`
	RemoteSel     string    `json:"remote_selector"`
	TransformSet  string    `json:"transform_set"`
	Transforms    []string  `json:"transforms"`
	Transform     string    `json:"transform"`
	Driver        string    `json:"driver"`
	DriverReason  string    `json:"driver_reason,omitempty"`
	// Transport is how the outbound SA's packets leave: an AF_XDP ring,
	// a raw socket (and why not the ring), a UDP socket.
	Transport string `json:"transport,omitempty"`
	// Datapath is "xfrm" (the kernel frames ESP/AH) or "lookaside" (the
	// offload engine and a driver); DatapathReason says why, for the
	// drivers kernel and auto.
	Datapath       string              `json:"datapath"`
	DatapathReason string              `json:"datapath_reason,omitempty"`
	SAs            []datapath.SAStatus `json:"sas"`
	// IKE is the negotiation state of a signaled tunnel, IKESA the IKE SA
	// it rides on (as `show ike sa` shows it).
	IKE   *ike.TunnelStatus `json:"ike,omitempty"`
	IKESA *IKESA            `json:"ike_sa,omitempty"`
	// Resumed says how the tunnel resumed from a checkpoint (a restart,
	// a cluster takeover): per SA, where it resumed and why there.
	Resumed  []string         `json:"resumed,omitempty"`
	Inbound  datapath.Traffic `json:"inbound"`
	Outbound datapath.Traffic `json:"outbound"`
}

// Statistics is what `show ipsec statistics` shows: the gateway's totals.
type Statistics struct {
	Uptime    string            `json:"uptime"`
	Tunnels   int               `json:"tunnels"`
	TunnelsUp int               `json:"tunnels_up"`
	SAs       int               `json:"sas"`
	Inbound   datapath.Traffic  `json:"inbound"`
	Outbound  datapath.Traffic  `json:"outbound"`
	Engine    datapath.Traffic  `json:"engine"`
	Gateway   map[string]uint64 `json:"gateway_drops"`
	Drivers   []string          `json:"drivers"`
	Fallbacks map[string]uint64 `json:"fallbacks"`
	IKE       *ike.Counters     `json:"ike,omitempty"`
	// IKEVersions are the counters of each IKE version ("ikev1",
	// "ikev2"), IKE their sum.
	IKEVersions map[string]ike.Counters `json:"ike_versions,omitempty"`
	Traps       []string                `json:"snmp_traps,omitempty"`

	// Workers is the number of lanes each data-path pipeline runs, and
	// Pipelines how many pipelines run.
	Workers   int                `json:"dataplane_workers"`
	Pipelines datapath.Pipelines `json:"pipelines"`
	// Rings are the AF_XDP rings raw ESP and AH use, with their counters.
	Rings []string `json:"rings,omitempty"`
}

// TransformSetStatus is what `show ipsec transform-set` shows of a set.
type TransformSetStatus struct {
	Name       string   `json:"name"`
	Transforms []string `json:"transforms"`
	Tunnels    []string `json:"tunnels"`
}

// Statistics totals the snapshot.
func (s *Snapshot) Statistics() Statistics {
	st := Statistics{Uptime: s.Uptime.Round(time.Second).String(), Tunnels: len(s.Tunnels),
		Inbound: datapath.Traffic{Drops: map[string]uint64{}}, Outbound: datapath.Traffic{Drops: map[string]uint64{}},
		Engine: s.Datapaths.Engine, Gateway: s.Datapaths.Drops, Drivers: s.Datapaths.Drivers, Fallbacks: s.Datapaths.Fallbacks,
		IKE: s.IKE, Traps: s.Traps, Workers: s.Datapaths.Workers, Pipelines: s.Datapaths.Pipelines, Rings: s.Rings}
	for v, c := range s.IKEVersions {
		if st.IKEVersions == nil {
			st.IKEVersions = map[string]ike.Counters{}
		}
		st.IKEVersions[fmt.Sprintf("ikev%d", v)] = c
	}
	for _, t := range s.Tunnels {
		if t.State == "up" {
			st.TunnelsUp++
		}
		st.SAs += len(t.SAs)
		st.Inbound.Add(t.Inbound)
		st.Outbound.Add(t.Outbound)
	}
	return st
}
