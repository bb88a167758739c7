package main

import (
	"os"

	"github.com/ismgw/ism/bench"
)

func failover(args []string) error {
	fs := newFlags("failover")
	d := bench.DefaultFailoverConfig
	runs := fs.Int("runs", 3, "runs, each with namespaces, charons and a gateway of its own")
	fs.DurationVar(&d.Sent, "dpd-sent", d.Sent, "ipsec dpd timers sent (whole seconds)")
	fs.DurationVar(&d.Silent, "dpd-silent", d.Silent, "ipsec dpd timers silent (whole seconds)")
	fs.DurationVar(&d.Idle, "dpd-idle", d.Idle, "ipsec dpd timers idle (whole seconds)")
	fs.DurationVar(&d.RetryInterval, "dpd-retry-interval", d.RetryInterval, "ipsec dpd retry interval (whole seconds)")
	fs.IntVar(&d.Retries, "dpd-retries", d.Retries, "ipsec dpd retry count")
	fs.DurationVar(&d.HoldDown, "hold-down", d.HoldDown, "ipsec failover hold-down (whole seconds)")
	fs.StringVar(&d.Loss, "loss", d.Loss, "how the destination is lost: kill (charon killed) or link-down")
	fs.DurationVar(&d.Interval, "interval", d.Interval, "time between two probe packets")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	plotDir := fs.String("plot", "", "write a plot (SVG and PNG) of the probes lost against the DPD events into this directory")
	fs.Parse(args)
	var rows []bench.FailoverResult
	for run := 1; run <= *runs; run++ {
		r, err := bench.MeasureFailover(d, run)
		if err != nil {
			return err
		}
		if *asJSON {
			bench.PrintJSON(os.Stdout, r)
		}
		rows = append(rows, r)
	}
	if !*asJSON {
		if err := bench.FailoverTable(os.Stdout, d, rows); err != nil {
			return err
		}
	}
	if *plotDir != "" {
		return bench.PlotFailover(*plotDir, rows)
	}
	return nil
}
