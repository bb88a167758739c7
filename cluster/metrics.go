package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics exports the node's cluster state to Prometheus: read from
// Status on each scrape, and a histogram of takeover durations fed as
// groups are acquired.
type metrics struct {
	n                             *Node
	leaseHeld, etcdUp, holding    *prometheus.Desc
	owned, ckptAge, txns, refused *prometheus.Desc
	fenced                        *prometheus.Desc
	takeovers                     *prometheus.HistogramVec
}

func newMetrics(n *Node) *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("ism_cluster_"+name, help, labels, prometheus.Labels{"node": n.cfg.Node})
	}
	return &metrics{n: n,
		leaseHeld: d("lease_held", "Whether this node holds its etcd lease (1) or seeks one (0)."),
		etcdUp:    d("etcd_reachable", "Whether etcd answered the last lease renewal."),
		holding:   d("etcd_holding", "Whether owners hold their groups with etcd unreachable and no member leading."),
		owned:     d("group_owned", "Whether this node owns the tunnel group.", "group"),
		ckptAge:   d("checkpoint_age_seconds", "Age of the last checkpoint this node wrote of the group it owns.", "group"),
		txns:      d("checkpoint_transactions_total", "Guarded checkpoint transactions this node committed.", "group"),
		refused:   d("checkpoint_refused_total", "Checkpoint transactions etcd refused (the node was no longer the owner).", "group"),
		fenced:    d("fenced_total", "Times this node stopped its groups because its lease was not renewed in time."),
		takeovers: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ism_cluster_takeover_seconds",
			Help:        "Time from setting out to take a group (vacant, or designated here) to the gateway's Start returning.",
			ConstLabels: prometheus.Labels{"node": n.cfg.Node}, Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10}},
			[]string{"kind"}),
	}
}

// Collector returns the node's Prometheus collector, for the gateway's
// metrics registry.
func (n *Node) Collector() prometheus.Collector { return n.metrics }

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.leaseHeld, m.etcdUp, m.holding, m.owned, m.ckptAge, m.txns, m.refused, m.fenced} {
		ch <- d
	}
	m.takeovers.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	st := m.n.Status()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(m.leaseHeld, prometheus.GaugeValue, b(st.Lease.State == "held"))
	ch <- prometheus.MustNewConstMetric(m.etcdUp, prometheus.GaugeValue, b(st.Etcd.Reachable))
	ch <- prometheus.MustNewConstMetric(m.holding, prometheus.GaugeValue, b(st.Etcd.Holding))
	ch <- prometheus.MustNewConstMetric(m.fenced, prometheus.CounterValue, float64(m.n.fencedCount.Load()))
	for _, g := range st.Groups {
		here := g.Local == owner.String() || g.Local == handingOver.String()
		ch <- prometheus.MustNewConstMetric(m.owned, prometheus.GaugeValue, b(here), g.Name)
		if here && g.CheckpointAge > 0 {
			ch <- prometheus.MustNewConstMetric(m.ckptAge, prometheus.GaugeValue, g.CheckpointAge.Seconds(), g.Name)
		}
		ch <- prometheus.MustNewConstMetric(m.txns, prometheus.CounterValue, float64(g.Txns), g.Name)
		ch <- prometheus.MustNewConstMetric(m.refused, prometheus.CounterValue, float64(g.Refused), g.Name)
	}
	m.takeovers.Collect(ch)
}
