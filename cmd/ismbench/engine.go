package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ismgw/ism/bench"
	"github.com/ismgw/ism/driver"
	_ "github.com/ismgw/ism/driver/dpdk" // registers "dpdk" (or its not-built stub)
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/transform"
)

func engine(args []string) error {
	fs := newFlags("engine")
	tname := fs.String("transform", "esp-aes128-gcm16,esp-aes128-hmac-sha,esp-3des-hmac-sha,ah-hmac-sha", "transforms, comma-separated, or all")
	sizes := fs.String("size", "64,512,1420", "inner packet sizes in bytes, comma-separated")
	drv := fs.String("driver", fallback.Name, "driver: software, dpdk, kernel, or all")
	dur := fs.Duration("duration", 2*time.Second, "time per measurement (engine and baseline together)")
	cores := fs.Int("cores", 1, "goroutines, each with its own SA pair (with -shared-sa: crypto workers on one SA pair)")
	shared := fs.Bool("shared-sa", false, "one SA pair on -cores crypto workers (offload.Pipeline, order checked), against the same SA on one core")
	dirs := fs.String("direction", "encap,decap", "encap, decap, or both")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	plotDir := fs.String("plot", "", "write a plot (SVG and PNG) of throughput by packet size and transform into this directory")
	eal := fs.String("eal", "", "DPDK EAL arguments (driver dpdk)")
	vdev := fs.String("vdev", "", "DPDK virtual devices, comma-separated (driver dpdk)")
	prof := fs.String("cpuprofile", "", "write a CPU profile of the measurements to this file")
	fs.Parse(args)
	stop, err := cpuProfile(*prof)
	if err != nil {
		return err
	}
	defer stop()

	var trs []transform.Transform
	if *tname == "all" {
		trs = transform.All()
	} else {
		for _, n := range strings.Split(*tname, ",") {
			t, ok := transform.Lookup(strings.TrimSpace(n))
			if !ok {
				return fmt.Errorf("unknown transform %q (have %s)", n, strings.Join(transform.Names(), ", "))
			}
			trs = append(trs, t)
		}
	}
	var sz []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 28 || n > driver.MaxPacket {
			return fmt.Errorf("bad size %q: want 28..%d", s, driver.MaxPacket)
		}
		sz = append(sz, n)
	}
	params := map[string]string{}
	if *eal != "" {
		params["eal"] = *eal
	}
	if *vdev != "" {
		params["vdev"] = *vdev
	}
	drivers, err := openDrivers(*drv, driver.Config{Workers: *cores, Params: params})
	if err != nil {
		return err
	}
	var rows []bench.EngineResult
	for _, t := range trs {
		for _, size := range sz {
			for _, dir := range strings.Split(*dirs, ",") {
				var soft float64
				for _, d := range drivers {
					measure := bench.MeasureEngine
					if *shared {
						measure = bench.MeasureSharedSA
					}
					r, err := measure(t, size, bench.Operation(dir), d, *cores, *dur)
					if err != nil {
						fmt.Fprintf(os.Stderr, "ismbench: %s %d %s: %v\n", t, size, dir, err)
						continue
					}
					if d == nil {
						soft = r.Gbps
					} else if soft > 0 {
						r.VsSoftware = r.Gbps / soft
					}
					var perf *bench.EngineResult
					if d != nil && d.Name() == "dpdk" && dir == string(bench.Encap) {
						gbps, err := bench.MeasureCryptoPerf(t, size)
						switch {
						case err == nil:
							r.VsCryptoPerf = r.Gbps / gbps
							perf = &bench.EngineResult{Transform: t.Name(), Size: size, Operation: bench.Encap,
								Driver: bench.CryptoPerfBinary, Cores: 1, Gbps: gbps, PPS: gbps * 1e9 / float64(8*size)}
						case !errors.Is(err, bench.ErrNoCryptoPerf):
							fmt.Fprintf(os.Stderr, "ismbench: %v\n", err)
						}
					}
					if *asJSON {
						bench.PrintJSON(os.Stdout, r)
						if perf != nil {
							bench.PrintJSON(os.Stdout, perf)
						}
					}
					rows = append(rows, r)
					if perf != nil {
						rows = append(rows, *perf)
					}
				}
			}
		}
	}
	if !*asJSON {
		if err := bench.EngineTable(os.Stdout, rows); err != nil {
			return err
		}
	}
	if *plotDir != "" {
		return bench.PlotEngine(*plotDir, rows)
	}
	return nil
}

// openDrivers returns the drivers to measure; nil stands for the software
// engine, always first when "all" is asked for.
func openDrivers(name string, c driver.Config) ([]driver.Driver, error) {
	if name == fallback.Name {
		return []driver.Driver{nil}, nil
	}
	if name != "all" {
		d, err := driver.Open(name, c)
		if err != nil {
			return nil, err
		}
		return []driver.Driver{d}, nil
	}
	out := []driver.Driver{nil}
	for _, r := range driver.ProbeAll(c) {
		switch {
		case r.Name == fallback.Name:
			if r.Driver != nil {
				r.Driver.Close()
			}
		case r.Err != nil:
			fmt.Fprintf(os.Stderr, "ismbench: driver %s skipped: %v\n", r.Name, r.Err)
		default:
			out = append(out, r.Driver)
		}
	}
	return out, nil
}
