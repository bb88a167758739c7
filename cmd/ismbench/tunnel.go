package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ismgw/ism/bench"
	"github.com/ismgw/ism/transform"
)

func tunnel(args []string) error {
	fs := newFlags("tunnel")
	tname := fs.String("transform", "esp-aes128-gcm16", "transforms, comma-separated")
	dur := fs.Duration("duration", 10*time.Second, "iperf3 time per path")
	encap := fs.String("encap", "udp", "encapsulation: udp (ESP in UDP, RFC 3948) or esp (raw IP protocol 50)")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	prof := fs.String("cpuprofile", "", "write a CPU profile of the gateways to this file")
	peer := fs.String("peer", "", "strongswan: also measure ISM against charon, charon against charon (ESP in UDP, IKEv1 main mode)")
	ike := ikeFlags(fs)
	fs.Parse(args)
	stop, err := cpuProfile(*prof)
	if err != nil {
		return err
	}
	defer stop()
	switch *peer {
	case "":
	case "strongswan":
		return peers(*tname, ike(), *dur, *asJSON)
	default:
		return fmt.Errorf("-peer %q: want strongswan", *peer)
	}
	var rows []bench.TunnelResult
	for _, n := range strings.Split(*tname, ",") {
		t, ok := transform.Lookup(strings.TrimSpace(n))
		if !ok {
			return fmt.Errorf("unknown transform %q", n)
		}
		if *encap != "udp" && *encap != "esp" {
			return fmt.Errorf("-encap %q: want udp or esp", *encap)
		}
		r, err := bench.MeasureTunnel(t, *encap == "udp", *dur)
		if err != nil {
			return err
		}
		if *asJSON {
			bench.PrintJSON(os.Stdout, r)
		}
		rows = append(rows, r)
	}
	if !*asJSON {
		fmt.Printf("%-24s %6s %8s %10s %10s %7s\n", "transform", "encap", "seconds", "Gbps", "bare Gbps", "ratio")
		for _, r := range rows {
			fmt.Printf("%-24s %6s %8d %10.3f %10.3f %7.3f\n", r.Transform, r.Encap, r.Seconds, r.Gbps, r.BareGbps, r.Ratio)
		}
	}
	return nil
}

// peers runs `ismbench tunnel -peer strongswan`.
func peers(tnames string, p bench.IKE, d time.Duration, asJSON bool) error {
	var rows []bench.PeersResult
	for _, n := range strings.Split(tnames, ",") {
		t, ok := transform.Lookup(strings.TrimSpace(n))
		if !ok {
			return fmt.Errorf("unknown transform %q", n)
		}
		r, err := bench.MeasurePeers(t, p, d)
		if err != nil {
			return err
		}
		if asJSON {
			bench.PrintJSON(os.Stdout, r)
		}
		rows = append(rows, r)
	}
	if !asJSON {
		return bench.PeersTable(os.Stdout, rows)
	}
	return nil
}
