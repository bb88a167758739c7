package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/ismgw/ism/bench"
	"github.com/ismgw/ism/transform"
)

func ike(args []string) error {
	fs := newFlags("ike")
	n := fs.Int("tunnels", 1000, fmt.Sprintf("tunnels per run, 1 to %d", bench.MaxIKETunnels))
	tname := fs.String("transform", "esp-aes128-gcm16", "the quick modes' transform")
	window := fs.Int("window", 250, "most tunnels an initiator has started and not yet up; 0 starts all at once")
	noSwan := fs.Bool("no-strongswan", false, "leave out strongSwan's runs (ISM's numbers alone)")
	quick := fs.Bool("quick", false, "also measure quick modes alone: every tunnel over one IKE SA")
	timeout := fs.Duration("timeout", 0, "bound on each run (default 60s plus 20ms a tunnel)")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	prof := fs.String("cpuprofile", "", "write a CPU profile of the runs (the in-process gateway) to this file")
	memprof := fs.String("memprofile", "", "write the gateway's heap profile, tunnels established, to this file")
	proposal := ikeFlags(fs)
	version := fs.Int("version", 1, "IKE version: 1 (main mode and quick mode) or 2")
	fs.Parse(args)
	t, ok := transform.Lookup(*tname)
	if !ok {
		return fmt.Errorf("unknown transform %q", *tname)
	}
	p := proposal()
	p.Version = *version
	o := bench.IKEOptions{Tunnels: *n, IKE: p, Transform: t, QuickModes: *quick, Timeout: *timeout, Window: *window, NoStrongSwan: *noSwan}
	if err := o.Validate(); err != nil {
		return err
	}
	stop, err := cpuProfile(*prof)
	if err != nil {
		return err
	}
	defer stop()
	if *memprof != "" {
		// Sample finely: per-tunnel structures are a few hundred bytes.
		runtime.MemProfileRate = 256
		f, err := os.Create(*memprof)
		if err != nil {
			return err
		}
		defer f.Close()
		o.HeapProfile = f
	}
	// A failed run leaves its numbers zero: print the others, then fail.
	r, err := bench.MeasureIKE(o)
	if *asJSON {
		bench.PrintJSON(os.Stdout, r)
	} else {
		bench.IKETable(os.Stdout, r)
	}
	return err
}
