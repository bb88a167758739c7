package driver

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// Config is what a probe gets when a driver is opened.
type Config struct {
	// Workers is the number of queue pairs wanted; 0 means one per CPU.
	Workers int
	// Params holds driver-specific settings, e.g. "eal" and "vdev" for DPDK.
	Params map[string]string
	Logger *slog.Logger
}

// Probe opens a driver or says why it cannot.
type Probe func(Config) (Driver, error)

var (
	regMu  sync.Mutex
	probes = map[string]Probe{}
)

// Register makes a driver available by name. It panics if the name is taken
// (a programming error at init time).
func Register(name string, p Probe) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := probes[name]; dup {
		panic("driver: Register called twice for " + name)
	}
	probes[name] = p
}

// Names lists the registered drivers, sorted.
func Names() []string {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]string, 0, len(probes))
	for n := range probes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Open probes and opens the named driver.
func Open(name string, c Config) (Driver, error) {
	regMu.Lock()
	p, ok := probes[name]
	regMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("driver: unknown driver %q (have %v)", name, Names())
	}
	d, err := p(c)
	if err != nil {
		return nil, fmt.Errorf("driver %s: %w", name, err)
	}
	return d, nil
}

// ProbeResult is what probing one driver found.
type ProbeResult struct {
	Name   string
	Driver Driver // nil when Err is set
	Err    error
}

// ProbeAll opens every registered driver, in name order, and reports each
// outcome; drivers that open are returned open.
func ProbeAll(c Config) []ProbeResult {
	var out []ProbeResult
	for _, n := range Names() {
		d, err := Open(n, c)
		out = append(out, ProbeResult{Name: n, Driver: d, Err: err})
	}
	return out
}
