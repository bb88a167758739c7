package bench

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// sharedWork is the workload of `ismbench engine -shared-sa`: one SA pair,
// its packets either run by one goroutine with an offload.Processor (one
// core) or through an offload.Pipeline with several crypto workers, a
// producer and a consumer. The consumer checks the order of every packet:
// outbound, consecutive ESP sequence numbers; inbound, the inner packets'
// numbers in the order they were submitted.
//
// Inbound, the same encapsulated packets are decapsulated again and again:
// before each use a packet's ciphertext is copied back (in both runs, so
// that the ratio compares like with like) and the inbound SA has no replay
// window.
type sharedWork struct {
	t      transform.Transform
	size   int
	op     Operation
	tx, rx *offload.Engine
	out    *offload.SA
	fb     *fallback.Driver
	pool   driver.BufferPool
	bufs   []*driver.Buffer // accelerator buffers, freed by close
	pkts   [][]*offload.Packet
	sealed [][]byte // inbound: each packet's encapsulated bytes
	off    []int    // and their offset in the buffer
	inner  []byte
	proc   *offload.Processor
	last   uint32 // outbound: the last sequence number seen
	driver string
}

// newSharedWork makes an SA pair and enough packets for a pipeline with
// workers crypto goroutines.
func newSharedWork(t transform.Transform, size int, op Operation, accel driver.Driver, workers int) (*sharedWork, error) {
	w := &sharedWork{t: t, size: size, op: op, fb: fallback.New(workers)}
	// No replay window: inbound, the same packets go through again and
	// again.
	p, err := newSAPair(t, w.fb, accel, 0)
	if err != nil {
		return nil, err
	}
	w.tx, w.rx, w.out, w.driver = p.tx, p.rx, p.out, p.driver
	w.inner = testpkt.UDP(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1"), 1, 2, size-28, 0)
	if p, ok := accel.(driver.BufferPool); ok && accel.Info().Features&driver.FeatureBufferPool != 0 {
		w.pool = p
	}
	// A producer keeps Depth+2 bursts, as a gateway's would.
	for range sharedDepth(workers) + 2 {
		burst := make([]*offload.Packet, offload.BurstSize)
		for j := range burst {
			burst[j] = w.newPacket()
		}
		w.pkts = append(w.pkts, burst)
	}
	w.proc = w.tx.NewProcessor()
	if op == Decap {
		w.seal()
		w.proc = w.rx.NewProcessor()
	}
	return w, nil
}

func (w *sharedWork) newPacket() *offload.Packet {
	if w.pool != nil {
		b := make([]*driver.Buffer, 1)
		if w.pool.AllocBuffers(b) == 1 {
			w.bufs = append(w.bufs, b[0])
			return &offload.Packet{Buf: b[0]}
		}
	}
	return offload.NewPacket()
}

// seal encapsulates every packet once, numbered in the order they will be
// submitted, and keeps a copy.
func (w *sharedWork) seal() {
	id := 0
	for _, burst := range w.pkts {
		for _, pk := range burst {
			w.fill(pk, id)
			id++
		}
		w.proc.Encap(burst)
		for _, pk := range burst {
			w.sealed = append(w.sealed, append([]byte(nil), pk.Buf.Bytes()...))
			w.off = append(w.off, pk.Buf.Off)
		}
	}
}

// fill makes pk inner packet id: a fresh IPv4 header whose identification
// is the id's low bits.
func (w *sharedWork) fill(pk *offload.Packet, id int) {
	pk.Reset(w.size)
	b := pk.Buf.Bytes()
	copy(b[:20], w.inner[:20])
	binary.BigEndian.PutUint16(b[4:], uint16(id))
	pk.SA = w.out
}

// load readies burst k for its stage: a new inner packet to encapsulate, or
// the sealed packet back in place to decapsulate.
func (w *sharedWork) load(k int) []*offload.Packet {
	burst := w.pkts[k]
	for j, pk := range burst {
		if w.op == Encap {
			w.fill(pk, k*offload.BurstSize+j)
			continue
		}
		i := k*offload.BurstSize + j
		pk.Buf.Off, pk.Buf.Len = w.off[i], len(w.sealed[i])
		copy(pk.Buf.Bytes(), w.sealed[i])
		pk.SA = nil
	}
	return burst
}

// check verifies that burst k came out whole and in order.
func (w *sharedWork) check(k int, burst []*offload.Packet) error {
	for j, pk := range burst {
		if pk.Drop != offload.NotDropped {
			return fmt.Errorf("bench: packet %d of burst %d dropped: %v", j, k, pk.Drop)
		}
		b := pk.Buf.Bytes()
		if w.op == Encap {
			off := 20 + 4 // the outer IPv4 header, then ESP's SPI
			if w.t.Protocol == transform.AH {
				off = 20 + 8
			}
			seq := binary.BigEndian.Uint32(b[off:])
			if seq != w.last+1 {
				return fmt.Errorf("bench: sequence number %d after %d: out of order", seq, w.last)
			}
			w.last = seq
			continue
		}
		if id := binary.BigEndian.Uint16(b[4:]); id != uint16(k*offload.BurstSize+j) {
			return fmt.Errorf("bench: inner packet %d in place of %d: out of order", id, uint16(k*offload.BurstSize+j))
		}
	}
	return nil
}

// oneCore runs bursts on this goroutine for d and returns the packets.
func (w *sharedWork) oneCore(d time.Duration) (int, time.Duration, error) {
	n, t0 := 0, time.Now()
	for time.Since(t0) < d {
		for k := range w.pkts {
			burst := w.load(k)
			if w.op == Encap {
				w.proc.Encap(burst)
			} else {
				w.proc.Decap(burst)
			}
			if err := w.check(k, burst); err != nil {
				return 0, 0, err
			}
			n += len(burst)
		}
	}
	return n, time.Since(t0), nil
}

// pipelined runs bursts through a pipeline with workers lanes for d, as a
// gateway does: each lane loads a burst (Fill), prepares, encrypts or
// decrypts and finishes it, and the bursts are checked in order
// (Deliver).
func (w *sharedWork) pipelined(workers int, d time.Duration) (int, time.Duration, error) {
	eng, dir := w.tx, ipsec.Outbound
	if w.op == Decap {
		eng, dir = w.rx, ipsec.Inbound
	}
	made := 0
	n := 0
	var err error
	// Bursts are checked in the order their packet sets were filled.
	filled := make(chan int, sharedDepth(workers))
	t0 := time.Now()
	pl := eng.NewPipeline(dir, offload.PipelineConfig{Workers: workers, Depth: sharedDepth(workers),
		NewBurst: func(b *offload.Burst) {
			b.Owner = made
			made++
		},
		Fill: func(b *offload.Burst) bool {
			if time.Since(t0) >= d {
				return false
			}
			b.Pkts = append(b.Pkts, w.load(b.Owner.(int))...)
			filled <- b.Owner.(int)
			return true
		},
		Deliver: func(b *offload.Burst) {
			if k := <-filled; k != b.Owner.(int) && err == nil {
				err = fmt.Errorf("bench: packet set %d delivered in place of %d: out of order", b.Owner.(int), k)
			}
			if err == nil {
				err = w.check(b.Owner.(int), b.Pkts)
			}
			n += len(b.Pkts)
		}})
	pl.Wait()
	return n, time.Since(t0), err
}

// sharedDepth is the pipeline's depth: four bursts per worker.
func sharedDepth(workers int) int { return 4 * workers }

func (w *sharedWork) close() {
	w.tx.Close()
	w.rx.Close()
	w.fb.Close()
	if w.pool != nil {
		w.pool.FreeBuffers(w.bufs)
	}
}

// sharedPass is how long one pass of MeasureSharedSA lasts: long enough
// that a pipeline's start and drain are noise, short enough that many
// passes take turns.
const sharedPass = 25 * time.Millisecond

// MeasureSharedSA measures one SA pair on cores crypto workers (an
// offload.Pipeline) against the same SA on one goroutine, in passes that
// take turns for about d in all; VsOneCore is the median of the pairs'
// ratios (a burst of load on a shared machine moves it little), the rates
// are over all passes. Every packet's order is checked. accel nil means
// the software engine.
func MeasureSharedSA(t transform.Transform, size int, op Operation, accel driver.Driver, cores int, d time.Duration) (EngineResult, error) {
	cores = max(cores, 1)
	w, err := newSharedWork(t, size, op, accel, cores)
	if err != nil {
		return EngineResult{}, err
	}
	defer w.close()
	var one, many rate
	var ratios []float64
	var cpu1, cpu2, wall2 time.Duration
	var pkts1, pkts2 int
	for end := time.Now().Add(d); time.Now().Before(end); {
		c0 := selfCPU()
		n1, el1, err := w.oneCore(sharedPass)
		if err != nil {
			return EngineResult{}, err
		}
		c1 := selfCPU()
		n2, el2, err := w.pipelined(cores, sharedPass)
		if err != nil {
			return EngineResult{}, err
		}
		cpu1, cpu2, wall2 = cpu1+c1-c0, cpu2+selfCPU()-c1, wall2+el2
		pkts1, pkts2 = pkts1+n1, pkts2+n2
		one.add([]int{n1}, []time.Duration{el1})
		many.add([]int{n2}, []time.Duration{el2})
		ratios = append(ratios, float64(n2)/el2.Seconds()/(float64(n1)/el1.Seconds()))
	}
	r := EngineResult{Transform: t.Name(), Size: size, Operation: op, Driver: w.driver, Cores: cores, SharedSA: true}
	r.PPS = many.pps()
	r.Gbps = r.PPS * float64(size) * 8 / 1e9
	r.OneCoreGbps = one.pps() * float64(size) * 8 / 1e9
	r.VsOneCore = median(ratios)
	r.PipelineCPUs = cpu2.Seconds() / wall2.Seconds()
	if pkts1 > 0 && pkts2 > 0 && cpu2 > 0 {
		r.CPUEfficiency = (cpu1.Seconds() / float64(pkts1)) / (cpu2.Seconds() / float64(pkts2))
	}
	return r, nil
}
