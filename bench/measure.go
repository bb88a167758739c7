package bench

import (
	"slices"
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
	// SharedSA rows (-shared-sa) measure one SA pair on Cores crypto
	// workers (an offload.Pipeline, order checked) against the same SA on
	// one goroutine in the same run: OneCoreGbps, and VsOneCore = Gbps /
	// OneCoreGbps.
	SharedSA    bool    `json:"shared_sa,omitempty"`
	OneCoreGbps float64 `json:"one_core_gbps,omitempty"`
	VsOneCore   float64 `json:"vs_one_core,omitempty"`
	// PipelineCPUs is the CPU time the process used during the pipelined
	// passes over their wall time: how many cores it actually got (on a
	// machine busy with other work, fewer than Cores, and VsOneCore says
	// more about the machine than about the pipeline).
	PipelineCPUs float64 `json:"pipeline_cpus,omitempty"`
	// CPUEfficiency is the CPU time per packet on one core over that of
	// the pipeline (handoffs, a second core's caches): what the pipeline
	// costs whatever else runs on the machine. Cores free for it, the
	// pipeline reaches about Cores × CPUEfficiency of one core.
	CPUEfficiency float64 `json:"cpu_efficiency,omitempty"`
}

// MeasureEngine measures one workload for about d in all on cores
// goroutines, each with its own SA pair. Each goroutine alternates a pass
// of the engine over its Pool packets with a pass of the baseline over the
// same buffers, so that both see the same machine: the ratio is the median
// of the passes' ratios, which a burst of load on a shared machine moves
// little; the rates are the sums. accel nil means the software engine.
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
	var ism, base rate
	ratios := make([][]float64, cores)
	pkts := make([]int, cores)
	ismBusy, baseBusy := make([]time.Duration, cores), make([]time.Duration, cores)
	var wg sync.WaitGroup
	for i, w := range works {
		wg.Go(func() {
			end := time.Now().Add(d)
			for time.Now().Before(end) {
				if op == Decap {
					w.PrepareDecap()
				}
				t0 := time.Now()
				var n int
				if op == Encap {
					n = w.Encap()
				} else {
					n = w.Decap()
				}
				t1 := time.Now()
				if op == Decap {
					w.PrepareRawOpen()
				}
				t2 := time.Now()
				if op == Encap {
					w.RawSeal()
				} else {
					w.RawOpen()
				}
				t3 := time.Now()
				pkts[i] += n
				ismBusy[i] += t1.Sub(t0)
				baseBusy[i] += t3.Sub(t2)
				ratios[i] = append(ratios[i], float64(t3.Sub(t2))/float64(t1.Sub(t0))*float64(n)/float64(Pool))
			}
		})
	}
	wg.Wait()
	ism.add(pkts, ismBusy)
	full := make([]int, cores)
	var all []float64
	for i := range full {
		full[i] = len(ratios[i]) * Pool
		all = append(all, ratios[i]...)
	}
	base.add(full, baseBusy)
	r := EngineResult{Transform: t.Name(), Size: size, Operation: op, Driver: works[0].Driver, Cores: cores}
	r.PPS = ism.pps()
	r.Gbps = r.PPS * float64(size) * 8 / 1e9
	r.RawGbps = base.pps() * float64(size) * 8 / 1e9
	r.Ratio = median(all)
	return r, nil
}

// median returns the middle of v, which it sorts; 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
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
