package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/ismgw/ism/bench"
	"github.com/ismgw/ism/transform"
)

func scale(args []string) error {
	fs := newFlags("scale")
	n := fs.Int("tunnels", 10000, fmt.Sprintf("tunnels, 1 to %d", bench.MaxIKETunnels))
	version := fs.Int("ike-version", 1, "IKE version of the tunnels: 1 or 2")
	tname := fs.String("transform", "esp-aes128-gcm16", "the child SAs' transform")
	window := fs.Int("window", 250, "most tunnels started and not yet up; 0 starts all at once")
	samples := fs.Int("samples", 8, "tunnels pinged once all are up")
	baseline := fs.Bool("baseline", true, "with more than 1,000 tunnels, measure 1,000 first in the same run (setups_per_s_at_1000)")
	timeout := fs.Duration("timeout", 0, "bound on each run (default 60s plus 20ms a tunnel)")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	plotDir := fs.String("plot", "", "write plots (SVG and PNG) of setups per second and tunnels up over time into this directory")
	prof := fs.String("cpuprofile", "", "write a CPU profile of this process (the initiating gateway) to this file")
	memprof := fs.String("memprofile", "", "write the initiating gateway's heap profile, tunnels established, to this file")
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
	o := bench.ScaleOptions{Tunnels: *n, IKEVersion: *version, IKE: proposal(), Transform: t, Window: *window,
		Samples: *samples, Baseline: *baseline, Timeout: *timeout, Peer: peer, PeerTunnels: perPeer, LogDir: logDir}
	if err := o.Validate(); err != nil {
		return err
	}
	stop, err := cpuProfile(*prof)
	if err != nil {
		return err
	}
	defer stop()
	if *memprof != "" {
		runtime.MemProfileRate = 256
		f, err := os.Create(*memprof)
		if err != nil {
			return err
		}
		defer f.Close()
		o.HeapProfile = f
	}
	rows, err := bench.MeasureScale(o)
	for _, r := range rows {
		if *asJSON {
			bench.PrintJSON(os.Stdout, r)
		}
	}
	if !*asJSON {
		bench.ScaleTable(os.Stdout, rows)
	}
	if err == nil && *plotDir != "" {
		err = bench.PlotScale(*plotDir, rows)
	}
	return err
}

// responderFlags declares the flags of the responding gateway's processes,
// which scale and soak share; the function it returns gives, once the flags
// are parsed, the command that runs one (this program's scale-peer), the
// tunnels each serves and the log directory.
func responderFlags(fs *flag.FlagSet) func() (bench.PeerCommand, int, string, error) {
	perPeer := fs.Int("peer-tunnels", bench.DefaultPeerTunnels, "most tunnels a responding process (and namespace) serves: each needs two sockets")
	logDir := fs.String("log", "", "write each gateway's whole log (debug level) into this directory, a file per gateway")
	return func() (bench.PeerCommand, int, string, error) {
		exe, err := os.Executable()
		if err != nil {
			return bench.PeerCommand{}, 0, "", err
		}
		return bench.PeerCommand{Path: exe, Args: []string{"scale-peer"}}, *perPeer, *logDir, nil
	}
}

// scalePeer is the hidden "scale-peer CONFIG" command: the responding
// gateway of scale and soak, in a process of its own.
func scalePeer(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("scale-peer: want the configuration file")
	}
	return bench.ServeScalePeer(args[0], os.Stdin, os.Stdout)
}
