package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/cluster"
	"github.com/ismgw/ism/ism"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/netns"
)

// The cluster (issue 11, §2): a configuration with `cluster node` makes
// ismd a node of an ISM cluster on etcd. The node (package cluster) owns
// tunnel groups through etcd leases and elections; the line card runs a
// group's tunnels only while the node owns it (ism.Gateway.StartGroup,
// StopGroup) and hands their state to the node's checkpoints
// (ExportGroup).

// lineCard is the gateway as the cluster sees it (cluster.Gateway).
type lineCard struct{ g *ism.Gateway }

func (l lineCard) Export(group string) ([]checkpoint.Tunnel, error) { return l.g.ExportGroup(group) }

func (l lineCard) Start(ctx context.Context, t cluster.Takeover) error {
	return l.g.StartGroup(ctx, ism.Takeover{Group: t.Group.Name, Tunnels: t.Tunnels, Written: t.Written,
		Policy: t.Policy, Valid: t.Valid})
}

func (l lineCard) Stop(group string, why cluster.StopReason) { l.g.StopGroup(group, why.String()) }

// clusterConfig turns the cluster commands into the node's configuration;
// its errors name the configuration line of the file they concern.
func clusterConfig(cfg *config.Config, g *ism.Gateway, log *slog.Logger) (cluster.Config, error) {
	c := cfg.Cluster
	tlsc, err := cluster.LoadTLS(c.CA, c.Cert, c.Key)
	if err != nil {
		line := c.CertLine
		if strings.Contains(err.Error(), "CA") {
			line = c.CALine
		}
		return cluster.Config{}, config.Error{File: cfg.File, Line: line, Msg: err.Error()}
	}
	key, err := checkpoint.LoadKeyFile(c.KeyFile)
	if err != nil {
		return cluster.Config{}, config.Error{File: cfg.File, Line: c.KeyFileLine, Msg: err.Error()}
	}
	cc := cluster.Config{Node: c.Node, Endpoints: c.Endpoints, TLS: tlsc, TTL: c.TTL, FenceMargin: c.FenceMargin,
		EtcdElectionTimeout: c.ElectionTimeout, CheckpointPeriod: cfg.Checkpoint.Interval, Key: key,
		Gateway: lineCard{g}, Logger: log.With("component", "cluster")}
	if cfg.Checkpoint.Off {
		cc.CheckpointPeriod = 0
	}
	if ns := c.VR.Netns; ns != "" {
		cc.Dialer = func(ctx context.Context, addr string) (net.Conn, error) {
			var conn net.Conn
			err := netns.Do(ns, func() error {
				var err error
				conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
				return err
			})
			return conn, err
		}
	}
	for _, gc := range c.Groups {
		cc.Groups = append(cc.Groups, cluster.Group{Name: gc.Name, TransportVR: gc.TransportVR.Name, VIP: gc.VIP,
			Tunnels: gc.Tunnels})
	}
	cc.Events = func(e cluster.Event) {
		log.Info("cluster event", "event", e.String())
		switch e.Kind {
		case cluster.Acquired:
			how := "failover"
			if e.Handover {
				how = "handover"
			}
			if e.From != "" {
				how += " from " + e.From
			}
			g.ClusterOwnership(e.Group, e.Node, "acquired", fmt.Sprintf("%s in %v", how, e.Duration.Round(time.Millisecond)))
		case cluster.Released:
			g.ClusterOwnership(e.Group, e.Node, "stopped", e.Reason)
		}
	}
	return cc, nil
}

// clusterNode is the running node, nil without a cluster configuration.
type clusterNode struct {
	n    *cluster.Node
	done chan error
	stop context.CancelFunc
}

// startCluster joins the cluster the configuration names; nil when it
// names none.
func startCluster(cfg *config.Config, g *ism.Gateway, log *slog.Logger) (*clusterNode, error) {
	if cfg.Cluster.Node == "" {
		return nil, nil
	}
	cc, err := clusterConfig(cfg, g, log)
	if err != nil {
		return nil, err
	}
	n, err := cluster.New(cc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cn := &clusterNode{n: n, done: make(chan error, 1), stop: cancel}
	go func() { cn.done <- n.Run(ctx) }()
	log.Info("cluster node started", "node", cc.Node, "groups", len(cc.Groups), "etcd", strings.Join(cc.Endpoints, ","))
	return cn, nil
}

// leave stops the node: its groups are handed over (StopShutdown) and it
// leaves the cluster, within a few seconds.
func (cn *clusterNode) leave() error {
	if cn == nil {
		return nil
	}
	cn.stop()
	select {
	case err := <-cn.done:
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case <-time.After(10 * time.Second):
		return errors.New("cluster: the node did not stop within 10 s")
	}
}

// collectors returns the node's Prometheus collectors; none without a
// cluster.
func (cn *clusterNode) collectors() []prometheus.Collector {
	if cn == nil {
		return nil
	}
	return []prometheus.Collector{cn.n.Collector()}
}

// daemonGateway is the gateway on the control socket, with the cluster's
// commands (operator.Commander).
type daemonGateway struct {
	*ism.Gateway
	cn *clusterNode
}

func (d daemonGateway) Command(cmd string) (string, any, bool, error) { return d.cn.command(cmd) }

// command runs the cluster's ismctl commands: show cluster, cluster drain
// and cluster undrain; ok is false for any other command.
func (cn *clusterNode) command(cmd string) (text string, data any, ok bool, err error) {
	switch cmd {
	case "show cluster", "cluster drain", "cluster undrain":
	default:
		return "", nil, false, nil
	}
	if cn == nil {
		return "", nil, true, errors.New("this gateway is not in a cluster (no cluster node command)")
	}
	switch cmd {
	case "show cluster":
		st := cn.n.Status()
		var b strings.Builder
		if _, err := st.WriteTo(&b); err != nil {
			return "", nil, true, err
		}
		return b.String(), st, true, nil
	case "cluster drain":
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
		defer cancel()
		if err := cn.n.Drain(ctx); err != nil {
			return "", nil, true, fmt.Errorf("drain: %w", err)
		}
		return "drained: this node's groups run on other nodes\n", map[string]bool{"draining": true}, true, nil
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cn.n.Undrain(ctx); err != nil {
			return "", nil, true, fmt.Errorf("undrain: %w", err)
		}
		return "this node takes groups again\n", map[string]bool{"draining": false}, true, nil
	}
}
