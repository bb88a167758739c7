package bench

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ismgw/ism/internal/etcdlab"
	"github.com/ismgw/ism/internal/netlab"
)

// `ismbench cluster` (issue 11, §4): a real etcd cluster of three members,
// each in its namespace on mutual TLS, ISM nodes (ismd processes) sharing
// a transport network with a peer gateway B over a bridge, one tunnel
// group with its VIP and B's three tunnels to it (manual, IKEv1, IKEv2).
// Probes every Interval from B through each tunnel to echo servers on the
// nodes (each answers with its node's number); the owner is killed with
// SIGKILL, and the benchmark measures the time to the first probe answered
// through the survivor, the probes lost, the IKE SAs B set up after the
// kill (renegotiations) and the packets B dropped as replays.

// ClusterConfig is what `ismbench cluster` runs with.
type ClusterConfig struct {
	Nodes    int           // 2 or 3
	TTL      time.Duration // cluster lease ttl, whole seconds
	Interval time.Duration // between two probes of a tunnel
}

// DefaultClusterConfig: two nodes, the default lease TTL, 10 ms probes.
var DefaultClusterConfig = ClusterConfig{Nodes: 2, TTL: 2 * time.Second, Interval: 10 * time.Millisecond}

// ClusterResult is one run.
type ClusterResult struct {
	Run        int     `json:"run"`
	Nodes      int     `json:"nodes"`
	Tunnels    int     `json:"tunnels"`
	LeaseTTL   float64 `json:"lease_ttl_s"`
	IntervalMS float64 `json:"interval_ms"`
	// TakeoverS is from the kill to the first probe answered through the
	// survivor, the longest over the tunnels.
	TakeoverS      float64 `json:"takeover_s"`
	LostPackets    int     `json:"lost_packets"`
	ProbePackets   int     `json:"probe_packets"`
	Renegotiations uint64  `json:"renegotiations"`
	ReplayDrops    uint64  `json:"replay_drops"`
	// EtcdTxnsPerS and EtcdPutsPerTunnelS are the owner's checkpoint
	// writes before the kill: transactions a second for the group, keys
	// written a second per tunnel.
	EtcdTxnsPerS       float64 `json:"etcd_txns_per_s"`
	EtcdPutsPerTunnelS float64 `json:"etcd_puts_per_tunnel_s"`
	// StartS is the survivor's own account (show cluster): from the
	// moment it set out to take the group (its owner's lease gone) to
	// the end of the line card's start.
	StartS float64 `json:"survivor_start_s"`
	// EtcdExpiryS is from the kill to the owner's election key deleted
	// (seen by a watch of an observer): etcd's part, the lease expiring
	// and being revoked. AfterExpiryS is the rest, ISM's part: the
	// survivor's watch, campaign, start, VIP and first packet.
	EtcdExpiryS  float64 `json:"etcd_expiry_s"`
	AfterExpiryS float64 `json:"after_expiry_s"`
	// EtcdElections counts etcd leader elections (raft term changes)
	// from before the kill to after the takeover: each extends every
	// lease by up to a TTL. EtcdWarnings counts the lines the members
	// logged at warn meanwhile (late heartbeats, slow applies);
	// EtcdLog holds them when the target was missed.
	EtcdElections uint64   `json:"etcd_elections"`
	EtcdWarnings  int      `json:"etcd_warnings"`
	EtcdLog       []string `json:"etcd_log,omitempty"`
	// SurvivorRejoined says the survivor lost its own lease meanwhile
	// (fenced: etcd did not renew it in time) and joined again.
	SurvivorRejoined bool    `json:"survivor_rejoined"`
	Survivor         string  `json:"survivor"`
	TargetTakeoverS  float64 `json:"target_takeover_s"`
	Met              bool    `json:"met"`
}

const clusterVIP = "203.0.113.100"

// clusterStatus is what the benchmark reads of `show cluster`.
type clusterStatus struct {
	Node   string
	Lease  struct{ ID int64 }
	Groups []struct {
		Name, Owner, Local string
		Txns, Puts         uint64
	}
	Takeovers []struct {
		Group, To string
		Duration  time.Duration
	}
}

// owns reports whether the node owns group g1, with its write counters.
func (d *ismdProc) owns() (bool, uint64, uint64) {
	var st clusterStatus
	if d.call("show cluster", &st) != nil {
		return false, 0, 0
	}
	for _, g := range st.Groups {
		if g.Name == "g1" && g.Owner == st.Node && g.Local == "owner" {
			return true, g.Txns, g.Puts
		}
	}
	return false, 0, 0
}

// MeasureCluster runs the benchmark once.
func MeasureCluster(c ClusterConfig, run int) (ClusterResult, error) {
	r := ClusterResult{Run: run, Nodes: c.Nodes, Tunnels: len(benchProbes), LeaseTTL: c.TTL.Seconds(),
		IntervalMS: float64(c.Interval) / float64(time.Millisecond), TargetTakeoverS: (c.TTL + time.Second).Seconds()}
	if c.Nodes < 2 || c.Nodes > 3 || c.TTL < time.Second || c.TTL%time.Second != 0 {
		return r, fmt.Errorf("bench: cluster: -nodes 2 or 3, -ttl whole seconds (got %d, %v)", c.Nodes, c.TTL)
	}
	var h harness
	err := h.run(func() {
		etcd := etcdlab.Start(&h, etcdlab.Options{Namespaces: true,
			Args: []string{"--heartbeat-interval", "50", "--election-timeout", "500"}})
		lab := netlab.New(&h)
		tx := lab.NS("tx")
		lab.MustRun(tx, "ip", "link", "add", "br0", "type", "bridge")
		lab.MustRun(tx, "ip", "link", "set", "br0", "up")
		dir := tempDir(&h)
		if err := os.WriteFile(filepath.Join(dir, "cluster.key"), []byte(strings.Repeat("c5", 32)+"\n"), 0o600); err != nil {
			h.Fatalf("bench: %v", err)
		}
		var nodes []*ismdProc
		for i := range c.Nodes {
			name := fmt.Sprintf("n%d", i+1)
			ns := etcd.Attach(name)
			lab.Link(ns, "eth1", netip.MustParsePrefix(fmt.Sprintf("203.0.113.%d/24", i+1)), tx, "p"+name, netip.Prefix{})
			lab.MustRun(tx, "ip", "link", "set", "p"+name, "master", "br0")
			cert, key := etcd.PKI.Client(&h, name)
			nodes = append(nodes, newISMD(&h, ns, dir, name, clusterNodeConf(dir, name, cert, key, etcd, c.TTL)))
			for _, p := range benchProbes {
				startEcho(&h, ns, p[1], byte(i+1))
			}
		}
		bNS := lab.NS("b")
		lab.Link(bNS, "eth0", netip.MustParsePrefix("203.0.113.50/24"), tx, "pb", netip.Prefix{})
		lab.MustRun(tx, "ip", "link", "set", "pb", "master", "br0")
		for _, p := range benchProbes {
			lab.MustRun(bNS, "ip", "addr", "add", p[0]+"/32", "dev", "lo")
		}
		b := newISMD(&h, bNS, dir, "b", "checkpoint interval 0\nipsec dpd timers sent 2 silent 4 idle 3\n"+peerTunnels(false, "203.0.113.50", clusterVIP))

		owner := nodes[0]
		owner.start()
		owner.waitFor(30*time.Second, "n1 owning the group", func() bool { ok, _, _ := owner.owns(); return ok })
		for _, n := range nodes[1:] {
			n.start()
		}
		b.start()
		var probes []*prober
		for _, p := range benchProbes {
			probes = append(probes, startProber(&h, bNS, p[0], p[1], c.Interval))
		}
		for i, p := range probes {
			p.waitFrom(&h, "through "+benchProbes[i][1]+" on n1", 1, time.Time{}, 30*time.Second)
		}
		_, txns0, puts0 := owner.owns()
		t0 := time.Now()
		time.Sleep(2 * time.Second)
		ok, txns1, puts1 := owner.owns()
		if !ok {
			h.Fatalf("bench: n1 lost the group before the kill\n%s", owner.logTail())
		}
		d := time.Since(t0).Seconds()
		r.EtcdTxnsPerS, r.EtcdPutsPerTunnelS = float64(txns1-txns0)/d, float64(puts1-puts0)/d/float64(len(benchProbes))
		before := b.peerCounters()
		ew := watchElection(&h, etcd)
		leases := map[string]int64{}
		for _, n := range nodes[1:] {
			var st clusterStatus
			if n.call("show cluster", &st) == nil {
				leases[st.Node] = st.Lease.ID
			}
		}

		killed := time.Now()
		owner.kill()
		var last time.Time
		for i, p := range probes {
			var at time.Time
			for id := byte(2); id <= byte(c.Nodes); id++ {
				if a, ok := p.firstFrom(id, killed); ok && (at.IsZero() || a.Before(at)) {
					at = a
				}
			}
			if at.IsZero() {
				at = p.waitFromAny(&h, "through "+benchProbes[i][1]+" on a survivor", 2, byte(c.Nodes), killed, 30*time.Second)
			}
			last = maxTime(last, at)
		}
		time.Sleep(2 * time.Second)
		for _, p := range probes {
			p.halt()
		}
		time.Sleep(300 * time.Millisecond)
		for _, p := range probes {
			l, n := p.lost()
			r.LostPackets, r.ProbePackets = r.LostPackets+l, r.ProbePackets+n
		}
		after := b.peerCounters()
		for _, n := range nodes[1:] {
			var st clusterStatus
			if n.call("show cluster", &st) == nil {
				r.SurvivorRejoined = r.SurvivorRejoined || st.Lease.ID != leases[st.Node]
				for _, tk := range st.Takeovers {
					if tk.Group == "g1" {
						r.Survivor, r.StartS = st.Node, tk.Duration.Seconds()
					}
				}
			}
		}
		r.TakeoverS = last.Sub(killed).Seconds()
		if at, ok := ew.expired(killed); ok {
			r.EtcdExpiryS, r.AfterExpiryS = at.Sub(killed).Seconds(), last.Sub(at).Seconds()
		}
		r.EtcdElections = ew.elections()
		warnings := ew.warnings()
		r.EtcdWarnings = len(warnings)
		r.Renegotiations, r.ReplayDrops = after.ikeSAs-before.ikeSAs, after.replayDrops-before.replayDrops
		r.Met = r.TakeoverS <= r.TargetTakeoverS && r.Renegotiations == 0 && r.ReplayDrops == 0
		if !r.Met {
			r.EtcdLog = warnings[:min(len(warnings), 20)]
		}
	})
	return r, err
}

// clusterNodeConf is a node's configuration: the cluster, the group g1 at
// the VIP with the three tunnels to B.
func clusterNodeConf(dir, node, cert, key string, etcd *etcdlab.Cluster, ttl time.Duration) string {
	var s strings.Builder
	fmt.Fprintf(&s, "cluster node %s\n", node)
	for _, ep := range etcd.Endpoints() {
		fmt.Fprintf(&s, "cluster etcd endpoint %s\n", ep)
	}
	fmt.Fprintf(&s, "cluster etcd ca-certificate %s\ncluster etcd certificate %s key %s\ncluster etcd election-timeout 500\n",
		etcd.PKI.CAFile, cert, key)
	fmt.Fprintf(&s, "cluster lease ttl %d\ncluster key-file %s/cluster.key\n", int(ttl.Seconds()), dir)
	fmt.Fprintf(&s, "cluster group g1\n  virtual-address %s/24\n  tunnel ipsec:m1\n  tunnel ipsec:s1\n  tunnel ipsec:s2\n", clusterVIP)
	fmt.Fprintf(&s, "checkpoint state-directory %s/state-%s\ncheckpoint key-file %s/cluster.key\ncheckpoint interval 1000\n", dir, node, dir)
	s.WriteString(peerTunnels(true, clusterVIP, "203.0.113.50"))
	return s.String()
}

// waitFromAny waits until a server numbered lo to hi answered a probe
// sent at or after since.
func (p *prober) waitFromAny(h *harness, what string, lo, hi byte, since time.Time, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for {
		for id := lo; id <= hi; id++ {
			if at, ok := p.firstFrom(id, since); ok {
				return at
			}
		}
		if time.Now().After(deadline) {
			h.Fatalf("bench: no probe answered %s within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ClusterTable prints the runs.
func ClusterTable(w io.Writer, rows []ClusterResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tnodes\ttunnels\tlease TTL s\ttakeover s\tof it etcd s\tetcd elections\tlost\tof probes\trenegotiations\treplay drops\tetcd txn/s\tetcd puts/s/tunnel\tmet\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.0f\t%.3f\t%.3f\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%v\t\n", r.Run, r.Nodes, r.Tunnels, r.LeaseTTL, r.TakeoverS,
			r.EtcdExpiryS, r.EtcdElections, r.LostPackets, r.ProbePackets, r.Renegotiations, r.ReplayDrops, r.EtcdTxnsPerS, r.EtcdPutsPerTunnelS, r.Met)
	}
	if err := tw.Flush(); err != nil || len(rows) == 0 {
		return err
	}
	_, err := fmt.Fprintf(w, "target: takeover ≤ lease TTL + 1 s = %.0f s, no renegotiation, no replay drop\n", rows[0].TargetTakeoverS)
	return err
}
