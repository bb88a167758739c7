package main

import (
	"os"

	"github.com/ismgw/ism/bench"
)

// cluster runs `ismbench cluster`: kill -9 of a cluster's owner.
func cluster(args []string) error {
	fs := newFlags("cluster")
	c := bench.DefaultClusterConfig
	runs := fs.Int("runs", 3, "runs, each with etcd, namespaces and gateways of its own")
	fs.IntVar(&c.Nodes, "nodes", c.Nodes, "ISM nodes in the cluster: 2 or 3")
	fs.DurationVar(&c.TTL, "ttl", c.TTL, "cluster lease ttl (whole seconds)")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "time between two probes of a tunnel")
	fs.StringVar(&bench.ISMD, "ismd", "", "the ismd binary (default: beside ismbench, else on PATH)")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	fs.Parse(args)
	var rows []bench.ClusterResult
	for run := 1; run <= *runs; run++ {
		r, err := bench.MeasureCluster(c, run)
		if err != nil {
			return err
		}
		if *asJSON {
			bench.PrintJSON(os.Stdout, r)
		}
		rows = append(rows, r)
	}
	if !*asJSON {
		return bench.ClusterTable(os.Stdout, rows)
	}
	return nil
}

// restart runs `ismbench restart`: kill -9 and restart of one gateway.
func restart(args []string) error {
	fs := newFlags("restart")
	c := bench.DefaultRestartConfig
	runs := fs.Int("runs", 3, "runs, each with namespaces and gateways of their own")
	fs.DurationVar(&c.Checkpoint, "checkpoint", c.Checkpoint, "checkpoint interval of the restarted gateway")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "time between two probes of a tunnel")
	fs.StringVar(&bench.ISMD, "ismd", "", "the ismd binary (default: beside ismbench, else on PATH)")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	fs.Parse(args)
	var rows []bench.RestartResult
	for run := 1; run <= *runs; run++ {
		r, err := bench.MeasureRestart(c, run)
		if err != nil {
			return err
		}
		if *asJSON {
			bench.PrintJSON(os.Stdout, r)
		}
		rows = append(rows, r)
	}
	if !*asJSON {
		return bench.RestartTable(os.Stdout, rows)
	}
	return nil
}
