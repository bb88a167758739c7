package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ismgw/ism/bench"
	"github.com/ismgw/ism/transform"
)

func soak(args []string) error {
	fs := newFlags("soak")
	n := fs.Int("tunnels", 10000, fmt.Sprintf("tunnels, 1 to %d", bench.MaxIKETunnels))
	version := fs.Int("ike-version", 1, "IKE version of the tunnels: 1 or 2")
	tname := fs.String("transform", "esp-aes128-gcm16", "the child SAs' transform")
	dur := fs.Duration("duration", 10*time.Minute, "how long the soak runs once every tunnel is up")
	lifetime := fs.Duration("lifetime", 0, "user SA lifetime (whole seconds, at least 30s); default: about 150 rekeys a second (tunnels/150 s)")
	reload := fs.Duration("reload-every", time.Minute, "time between two reloads of both gateways; 0: none")
	churn := fs.Int("churn", 50, "tunnels each reload removes, and as many it adds")
	restart := fs.Bool("restart-peer", true, "restart the responding gateway once, half way")
	losing := fs.Int("restart-losing-deletes", 0, "responder processes (the last ones) whose deletes are lost when they restart, as a crashed peer's")
	samples := fs.Int("samples", 8, "tunnels carrying a probe stream")
	every := fs.Duration("sample-every", 5*time.Second, "time between two readings of memory, goroutines and counters")
	window := fs.Int("window", 250, "most tunnels started and not yet up during the setup")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	plotDir := fs.String("plot", "", "write plots (SVG and PNG) of heap, goroutines, rekeys per second and tunnels up over time into this directory")
	responder := responderFlags(fs)
	proposal := ikeFlags(fs)
	fs.Parse(args)
	t, ok := transform.Lookup(*tname)
	if !ok {
		return fmt.Errorf("unknown transform %q", *tname)
	}
	peer, perPeer, logDir, err := responder()
	if err != nil {
		return err
	}
	o := bench.SoakOptions{Tunnels: *n, IKEVersion: *version, IKE: proposal(), Transform: t, Duration: *dur, Lifetime: *lifetime,
		ReloadEvery: *reload, Churn: *churn, RestartPeer: *restart, RestartLosingDeletes: *losing, Samples: *samples, SampleEvery: *every, Window: *window,
		Peer: peer, PeerTunnels: perPeer, LogDir: logDir}
	r, err := bench.MeasureSoak(o)
	if err != nil {
		return err
	}
	if *asJSON {
		err = bench.PrintJSON(os.Stdout, r)
	} else {
		err = bench.SoakTable(os.Stdout, r)
	}
	if err == nil && *plotDir != "" {
		err = bench.PlotSoak(*plotDir, r)
	}
	if err == nil {
		if ps := r.Problems(); len(ps) > 0 {
			err = fmt.Errorf("soak failed: %s", strings.Join(ps, "; "))
		}
	}
	return err
}
