package bench

import (
	"fmt"
	"net/netip"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// Operation is what an engine workload measures: encapsulation or
// decapsulation.
type Operation string

// Operations.
const (
	Encap Operation = "encap"
	Decap Operation = "decap"
)

// Pool is how many packets a workload cycles through: 256 packets of
// 1420 bytes are about 400 KiB, inside the L2 or L3 cache of a server core,
// for the engine and the baseline alike.
const Pool = 256

// EngineWork is one engine workload: a sender and a receiver engine with one
// SA pair for a transform, bound to a driver, and Pool packets of Size bytes
// in bursts of offload.BurstSize. It is used by one goroutine.
type EngineWork struct {
	Transform transform.Transform
	Size      int
	Driver    string // the driver the SAs are bound to

	tx, rx *offload.Engine
	ptx    *offload.Processor
	prx    *offload.Processor
	sa     *offload.SA
	inner  []byte
	hdr    [20]byte // inner's IPv4 header, which reset puts back
	pkts   []*offload.Packet
	burst  []*offload.Packet
	raw    *raw
	fb     *fallback.Driver
}

// NewEngineWork sets up a workload for t at size bytes of inner packet. With
// accel nil the SAs use the software engine; otherwise they must bind to
// accel, or NewEngineWork fails.
func NewEngineWork(t transform.Transform, size int, accel driver.Driver) (*EngineWork, error) {
	w := &EngineWork{Transform: t, Size: size, fb: fallback.New(1)}
	p, err := newSAPair(t, w.fb, accel, offload.DefaultReplayWindow)
	if err != nil {
		return nil, err
	}
	w.tx, w.rx, w.sa, w.Driver = p.tx, p.rx, p.out, p.driver
	w.ptx, w.prx = w.tx.NewProcessor(), w.rx.NewProcessor()
	if size < 28 {
		return nil, fmt.Errorf("bench: size %d is smaller than an IPv4 UDP header", size)
	}
	w.inner = testpkt.UDP(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1"), 1, 2, size-28, 0)
	w.hdr = [20]byte(w.inner)
	// Packets live where the gateway keeps them: in the accelerator's own
	// memory when it has a pool (DPDK mbufs), else in Go memory.
	var bufs []*driver.Buffer
	if pool, ok := accel.(driver.BufferPool); ok && accel.Info().Features&driver.FeatureBufferPool != 0 {
		bufs = make([]*driver.Buffer, Pool)
		bufs = bufs[:pool.AllocBuffers(bufs)]
	}
	for i := range Pool {
		pk := offload.NewPacket()
		if i < len(bufs) {
			pk = &offload.Packet{Buf: bufs[i]}
		}
		pk.Reset(size)
		copy(pk.Buf.Bytes(), w.inner)
		w.pkts = append(w.pkts, pk)
	}
	w.burst = make([]*offload.Packet, 0, offload.BurstSize)
	raws := make([][]byte, Pool)
	for i, pk := range w.pkts {
		// The baseline starts where the engine writes the ESP header.
		raws[i] = pk.Buf.Mem[offload.Headroom-24:]
	}
	w.raw = newRaw(t, size, raws)
	return w, nil
}

// saPair is a workload's SA pair: the outbound SA on tx, the matching
// inbound one on rx.
type saPair struct {
	tx, rx  *offload.Engine
	out, in *offload.SA
	driver  string // the driver both are bound to
}

// newSAPair makes two engines on fb and accel and an SA pair for t between
// them with zero keys and the given replay window; with accel set, both
// SAs must bind to it.
func newSAPair(t transform.Transform, fb, accel driver.Driver, window int) (p saPair, err error) {
	var accels []driver.Driver
	if accel != nil {
		accels = []driver.Driver{accel}
	}
	if p.tx, err = offload.New(offload.Config{Fallback: fb, Drivers: accels}); err != nil {
		return p, err
	}
	if p.rx, err = offload.New(offload.Config{Fallback: fb, Drivers: accels}); err != nil {
		return p, err
	}
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	c := offload.SAConfig{SPI: 0x1000, Transform: t, Src: src, Dst: dst, ReplayWindow: window,
		CipherKey: make(ipsec.Key, t.CipherKeyLen()), AuthKey: make(ipsec.Key, t.AuthKeyLen())}
	c.Direction = ipsec.Outbound
	if p.out, err = p.tx.AddSA(c); err != nil {
		return p, err
	}
	c.Direction = ipsec.Inbound
	if p.in, err = p.rx.AddSA(c); err != nil {
		return p, err
	}
	p.driver, _ = p.out.Driver()
	if name, _ := p.in.Driver(); accel != nil && (p.driver != accel.Name() || name != accel.Name()) {
		return p, fmt.Errorf("bench: %s is not supported by %s", t, accel.Name())
	}
	return p, nil
}

// Close releases the engines.
func (w *EngineWork) Close() {
	w.tx.Close()
	w.rx.Close()
	w.fb.Close()
}

// reset makes packet i an inner packet again. Only the IPv4 header is
// restored: the payload's bytes do not change the work done.
func (w *EngineWork) reset(i int) {
	pk := w.pkts[i]
	pk.Reset(w.Size)
	*(*[20]byte)(pk.Buf.Bytes()) = w.hdr // an array, not a slice: no call to memmove
	pk.SA = w.sa
}

// Encap encapsulates all Pool packets in bursts and returns the packets
// sent.
func (w *EngineWork) Encap() int {
	for i := 0; i < Pool; i += offload.BurstSize {
		w.burst = w.burst[:0]
		for j := i; j < min(i+offload.BurstSize, Pool); j++ {
			w.reset(j)
			w.burst = append(w.burst, w.pkts[j])
		}
		w.ptx.Encap(w.burst)
	}
	return w.count()
}

// PrepareDecap encapsulates all Pool packets so that Decap has fresh ones
// (with new sequence numbers) to take apart. It is not part of the
// measurement.
func (w *EngineWork) PrepareDecap() { w.Encap() }

// Decap decapsulates the Pool packets PrepareDecap made and returns the
// packets delivered.
func (w *EngineWork) Decap() int {
	for i := 0; i < Pool; i += offload.BurstSize {
		w.burst = append(w.burst[:0], w.pkts[i:min(i+offload.BurstSize, Pool)]...)
		w.prx.Decap(w.burst)
	}
	return w.count()
}

func (w *EngineWork) count() int {
	n := 0
	for _, pk := range w.pkts {
		if pk.Drop == offload.NotDropped {
			n++
		}
	}
	return n
}

// RawSeal runs the baseline's outbound crypto over Pool buffers.
func (w *EngineWork) RawSeal() int {
	for i := range Pool {
		w.raw.seal(i)
	}
	return Pool
}

// PrepareRawOpen seals the baseline's buffers so that RawOpen can verify
// them; not part of the measurement.
func (w *EngineWork) PrepareRawOpen() { w.RawSeal() }

// RawOpen runs the baseline's inbound crypto over Pool buffers and returns
// how many verified.
func (w *EngineWork) RawOpen() int {
	n := 0
	for i := range Pool {
		if w.raw.open(i) {
			n++
		}
	}
	return n
}
