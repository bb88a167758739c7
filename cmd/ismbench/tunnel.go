package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ismgw/ism/bench"
	_ "github.com/ismgw/ism/driver/dpdk" // registers "dpdk" (or its not-built stub)
	"github.com/ismgw/ism/transform"
)

func tunnel(args []string) error {
	fs := newFlags("tunnel")
	tname := fs.String("transform", "esp-aes128-gcm16", "transforms, comma-separated")
	dur := fs.Duration("duration", 10*time.Second, "iperf3 time per path")
	encap := fs.String("encap", "udp", "encapsulations, comma-separated: udp (ESP in UDP, RFC 3948), esp (raw IP protocol 50, through the AF_XDP ring where it runs), esp-socket (raw ESP on raw sockets)")
	workers := fs.Int("workers", 0, "dataplane workers of both gateways (0: auto, one per CPU)")
	drv := fs.String("driver", "", "the gateways' crypto driver: software, dpdk (ismbench built with -tags dpdk; each gateway gets its own DPDK software crypto devices), kernel; default auto")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	prof := fs.String("cpuprofile", "", "write a CPU profile of the gateways to this file")
	peer := fs.String("peer", "", "strongswan: also measure ISM against charon, charon against charon (ESP in UDP, IKE as -ike-version says); wireguard-go: also measure a wireguard-go tunnel between the same namespaces")
	ike := ikeFlags(fs)
	version := fs.Int("ike-version", 1, "with -peer strongswan: the signaled tunnels' IKE version, 1 or 2")
	fs.Parse(args)
	stop, err := cpuProfile(*prof)
	if err != nil {
		return err
	}
	defer stop()
	switch *peer {
	case "", "wireguard-go":
	case "strongswan":
		p := ike()
		p.Version = *version
		return peers(*tname, p, *dur, *asJSON)
	default:
		return fmt.Errorf("-peer %q: want strongswan or wireguard-go", *peer)
	}
	var trs []transform.Transform
	for _, n := range strings.Split(*tname, ",") {
		t, ok := transform.Lookup(strings.TrimSpace(n))
		if !ok {
			return fmt.Errorf("unknown transform %q", n)
		}
		trs = append(trs, t)
	}
	encaps := strings.Split(*encap, ",")
	for _, e := range encaps {
		if e != "udp" && e != "esp" && e != "esp-socket" {
			return fmt.Errorf("-encap %q: want udp, esp, esp-socket or several", e)
		}
	}
	var wg *bench.WireGuardResult
	if *peer == "wireguard-go" {
		r, err := bench.MeasureWireGuard(*dur)
		if err != nil {
			return err
		}
		wg = &r
		if *asJSON {
			bench.PrintJSON(os.Stdout, r)
		}
	}
	var rows []bench.TunnelResult
	var cmps []bench.EncapComparison
	for _, t := range trs {
		by, cpu := map[string]float64{}, map[string]float64{}
		for _, e := range encaps {
			setup := bench.TunnelSetup{UDP: e == "udp", Workers: *workers, Driver: *drv}
			switch e {
			case "esp":
				setup.RawTransport = "auto" // the ring where it runs
			case "esp-socket":
				setup.RawTransport = "socket"
			}
			r, err := bench.MeasureTunnel(t, setup, *dur)
			if err != nil {
				return err
			}
			r.Encap = e
			if wg != nil && wg.Gbps > 0 {
				r.WireGuardGbps, r.VsWireGuard = wg.Gbps, r.Gbps/wg.Gbps
			}
			by[e], cpu[e] = r.Gbps, r.CPUNsPerPacket
			if *asJSON {
				bench.PrintJSON(os.Stdout, r)
			}
			rows = append(rows, r)
		}
		if by["esp"] > 0 && (by["udp"] > 0 || by["esp-socket"] > 0) {
			c := bench.EncapComparison{Transform: t.Name()}
			if by["udp"] > 0 {
				c.RawVsUDP = by["esp"] / by["udp"]
			}
			if cpu["udp"] > 0 {
				c.RawVsUDPCPU = cpu["esp"] / cpu["udp"]
			}
			if by["esp-socket"] > 0 {
				c.RingVsSocket = by["esp"] / by["esp-socket"]
			}
			if *asJSON {
				bench.PrintJSON(os.Stdout, c)
			}
			cmps = append(cmps, c)
		}
	}
	if !*asJSON {
		return bench.TunnelTable(os.Stdout, rows, cmps, wg)
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
