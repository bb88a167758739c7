package bench

import (
	"sync"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/transform"
)

// EngineResult is one row of `ismbench engine`.
type EngineResult struct {
	Transform string    `json:"transform"`
	Size      int       `json:"size"`
	Operation Operation `json:"operation"`
	Driver    string    `json:"driver"`
	Cores     int       `json:"cores"`
	PPS       float64   `json:"pps"`
	Gbps      float64   `json:"gbps"`
	RawGbps   float64   `json:"raw_gbps"`
	// Ratio is Gbps / RawGbps: the engine against the plain standard
	// library on the same buffers, measured in the same run.
	Ratio float64 `json:"ratio"`
	// VsSoftware is Gbps over the software engine's Gbps for the same
	// transform and size, when several drivers were measured.
	VsSoftware float64 `json:"vs_software,omitempty"`
	// VsCryptoPerf is Gbps over dpdk-test-crypto-perf's on the same PMD,
	// algorithm and size (DPDK driver, encapsulation).
	VsCryptoPerf float64 `json:"vs_crypto_perf,omitempty"`
}

// rounds is how many times the engine and the baseline take turns, so that
// noise on a shared machine falls on both.
const rounds = 5

// MeasureEngine measures one workload for about d in all, split between the
// engine and the baseline, on cores goroutines each with its own SA pair.
// accel nil means the software engine.
func MeasureEngine(t transform.Transform, size int, op Operation, accel driver.Driver, cores int, d time.Duration) (EngineResult, error) {
	cores = max(cores, 1)
	works := make([]*EngineWork, cores)
	for i := range works {
		w, err := NewEngineWork(t, size, accel)
		if err != nil {
			return EngineResult{}, err
		}
		defer w.Close()
		works[i] = w
	}
	slice := d / (2 * rounds)
	var ism, base rate
	for range rounds {
		ism.add(runAll(works, slice, func(w *EngineWork) (int, time.Duration) {
			if op == Encap {
				t0 := time.Now()
				return w.Encap(), time.Since(t0)
			}
			w.PrepareDecap()
			t0 := time.Now()
			return w.Decap(), time.Since(t0)
		}))
		base.add(runAll(works, slice, func(w *EngineWork) (int, time.Duration) {
			if op == Encap {
				t0 := time.Now()
				return w.RawSeal(), time.Since(t0)
			}
			w.PrepareRawOpen()
			t0 := time.Now()
			return w.RawOpen(), time.Since(t0)
		}))
	}
	r := EngineResult{Transform: t.Name(), Size: size, Operation: op, Driver: works[0].Driver, Cores: cores}
	r.PPS = ism.pps()
	r.Gbps = r.PPS * float64(size) * 8 / 1e9
	r.RawGbps = base.pps() * float64(size) * 8 / 1e9
	if r.RawGbps > 0 {
		r.Ratio = r.Gbps / r.RawGbps
	}
	return r, nil
}

// rate sums packets and busy time per goroutine.
type rate struct {
	pkts []int
	busy []time.Duration
}

func (r *rate) add(pkts []int, busy []time.Duration) {
	if r.pkts == nil {
		r.pkts, r.busy = make([]int, len(pkts)), make([]time.Duration, len(pkts))
	}
	for i := range pkts {
		r.pkts[i] += pkts[i]
		r.busy[i] += busy[i]
	}
}

// pps is the sum over goroutines of each one's packets per busy second.
func (r *rate) pps() float64 {
	var s float64
	for i := range r.pkts {
		if r.busy[i] > 0 {
			s += float64(r.pkts[i]) / r.busy[i].Seconds()
		}
	}
	return s
}

// runAll runs step on every workload in its own goroutine until d has
// passed, and returns each one's packets and timed duration.
func runAll(works []*EngineWork, d time.Duration, step func(*EngineWork) (int, time.Duration)) ([]int, []time.Duration) {
	pkts := make([]int, len(works))
	busy := make([]time.Duration, len(works))
	var wg sync.WaitGroup
	for i, w := range works {
		wg.Go(func() {
			end := time.Now().Add(d)
			for time.Now().Before(end) {
				n, t := step(w)
				pkts[i] += n
				busy[i] += t
			}
		})
	}
	wg.Wait()
	return pkts, busy
}
