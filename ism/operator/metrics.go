package operator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/ismgw/ism/ism/datapath"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics exports the tunnels' counters to Prometheus, read on each scrape.
type metrics struct {
	g       Gateway
	up      *prometheus.Desc
	packets *prometheus.Desc
	bytes   *prometheus.Desc
	drops   *prometheus.Desc
	gwDrops *prometheus.Desc
}

func newMetrics(g Gateway) *metrics {
	return &metrics{
		g:       g,
		up:      prometheus.NewDesc("ism_tunnel_up", "Whether the secure tunnel is up (1) or down (0).", []string{"tunnel"}, nil),
		packets: prometheus.NewDesc("ism_tunnel_packets_total", "Packets the tunnel carried.", []string{"tunnel", "direction"}, nil),
		bytes:   prometheus.NewDesc("ism_tunnel_bytes_total", "Inner bytes the tunnel carried.", []string{"tunnel", "direction"}, nil),
		drops:   prometheus.NewDesc("ism_tunnel_drops_total", "Packets the tunnel dropped, by reason.", []string{"tunnel", "direction", "reason"}, nil),
		gwDrops: prometheus.NewDesc("ism_drops_total", "Packets dropped before a tunnel was known, by reason.", []string{"reason"}, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.up, m.packets, m.bytes, m.drops, m.gwDrops} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	snap := m.g.Snapshot()
	for _, t := range snap.Tunnels {
		up := 0.0
		if t.State == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, up, t.Name)
		for _, d := range []struct {
			dir string
			t   datapath.Traffic
		}{{"inbound", t.Inbound}, {"outbound", t.Outbound}} {
			ch <- prometheus.MustNewConstMetric(m.packets, prometheus.CounterValue, float64(d.t.Packets), t.Name, d.dir)
			ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.CounterValue, float64(d.t.Bytes), t.Name, d.dir)
			for reason, n := range d.t.Drops {
				ch <- prometheus.MustNewConstMetric(m.drops, prometheus.CounterValue, float64(n), t.Name, d.dir, reason)
			}
		}
	}
	st := snap.Statistics()
	for reason, n := range st.Gateway {
		ch <- prometheus.MustNewConstMetric(m.gwDrops, prometheus.CounterValue, float64(n), reason)
	}
	for reason, n := range OnlyNoSA(st.Engine.Drops) {
		ch <- prometheus.MustNewConstMetric(m.gwDrops, prometheus.CounterValue, float64(n), reason)
	}
}

// ServeMetrics serves Prometheus metrics at http://addr/metrics, in the
// daemon's own namespace, until ctx ends, with the extra collectors' (the
// cluster's). It returns once listening.
func ServeMetrics(ctx context.Context, addr netip.AddrPort, g Gateway, log *slog.Logger, extra ...prometheus.Collector) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetrics(g))
	reg.MustRegister(extra...)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return fmt.Errorf("operator: metrics listener: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics", "err", err)
		}
	}()
	return nil
}
