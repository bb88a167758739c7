//go:build dpdk && cgo

package dpdk

/*
#include <stdlib.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_cryptodev.h>
#include "cdpdk.h"
*/
import "C"

import (
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/transform"
)

// Name is the driver's registry name.
const Name = "dpdk"

// Defaults for the sizing parameters.
const (
	DefaultDepth    = 1024 // descriptors per device queue pair ("depth")
	DefaultMbufs    = 8192 // packet buffers ("mbufs")
	DefaultSessions = 8192 // device sessions ("sessions")
)

// mbufRoom is the data room of every mbuf: DPDK's headroom, the largest
// packet and room for ESP's trailer, ICV and ESN bits after it.
const mbufRoom = C.RTE_PKTMBUF_HEADROOM + driver.MaxPacket + 256

// claimed marks the devices an open Driver uses; a device serves one open
// Driver at a time.
var (
	claimMu sync.Mutex
	claimed = map[uint8]bool{}
	poolSeq atomic.Uint64
)

// Driver is the DPDK cryptodev driver. It is safe for concurrent use; each
// queue pair is owned by one goroutine, as driver.QueuePair says. Close must
// not run while a queue pair is in use.
type Driver struct {
	log    *slog.Logger
	devs   []device
	prefer map[transform.Transform][]int // devices of the best rank, by index in devs
	rr     atomic.Uint32
	info   driver.Info
	depth  int

	opPool, mbPool, sessPool *C.struct_rte_mempool
	mbufs                    mbufSet
	qps                      []*queuePair

	mu       sync.Mutex // guards sessions, events sends, errSeen and shutdown
	sessions map[*session]struct{}
	events   chan driver.Event
	errSeen  []uint64
	closed   atomic.Bool
}

var (
	_ driver.Driver     = (*Driver)(nil)
	_ driver.BufferPool = (*Driver)(nil)
)

// params are the parsed driver.Config.Params.
type params struct {
	vdevs                  []string
	devices                []string // explicit device names, or nil
	depth, mbufs, sessions int
	ealExplicit            bool
	eal                    []string
}

func parseParams(c driver.Config) (params, error) {
	p := params{vdevs: DefaultVdevs, depth: DefaultDepth, mbufs: DefaultMbufs, sessions: DefaultSessions}
	if v, ok := c.Params["vdev"]; ok {
		p.vdevs = splitList(v)
	}
	if v, ok := c.Params["devices"]; ok {
		p.devices = splitList(v)
	}
	for _, k := range []struct {
		name string
		dst  *int
		min  int
	}{{"depth", &p.depth, 32}, {"mbufs", &p.mbufs, 64}, {"sessions", &p.sessions, 16}} {
		v, ok := c.Params[k.name]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < k.min || n > 1<<24 {
			return p, fmt.Errorf("dpdk: parameter %s=%q: want an integer from %d to %d", k.name, v, k.min, 1<<24)
		}
		*k.dst = n
	}
	_, p.ealExplicit = c.Params["eal"]
	p.eal = ealArgs(c.Params, p.vdevs)
	return p, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" && f != "none" {
			out = append(out, f)
		}
	}
	return out
}

// Open starts EAL if needed, claims the devices and sets up queue pairs and
// pools. Errors that come from the host (no EAL, no device) wrap
// driver.ErrUnavailable.
func Open(c driver.Config) (*Driver, error) {
	p, err := parseParams(c)
	if err != nil {
		return nil, err
	}
	if err := startEAL(p.eal, p.ealExplicit); err != nil {
		return nil, err
	}
	for _, v := range p.vdevs {
		if err := ensureVdev(v); err != nil {
			return nil, err
		}
	}
	devs, err := pickDevices(p)
	if err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{log: log, devs: devs, depth: p.depth, sessions: map[*session]struct{}{},
		events: make(chan driver.Event, 16), errSeen: make([]uint64, len(devs))}
	if err := d.setup(p, c.Workers); err != nil {
		d.teardown()
		return nil, err
	}
	for _, dv := range devs {
		log.Info("dpdk device", "device", dv.name, "pmd", dv.pmd, "hardware", dv.hw)
	}
	return d, nil
}

// pickDevices chooses and claims the devices: the named ones, or every
// software device of the vdev list and every hardware device.
func pickDevices(p params) ([]device, error) {
	all := listDevices()
	want := func(dv device) bool {
		if p.devices != nil {
			return slices.Contains(p.devices, dv.name)
		}
		return dv.hw || slices.Contains(p.vdevs, dv.name)
	}
	claimMu.Lock()
	defer claimMu.Unlock()
	var devs []device
	for _, dv := range all {
		if !want(dv) {
			continue
		}
		if claimed[dv.id] {
			return nil, fmt.Errorf("%w: dpdk: device %s is in use by another open driver", driver.ErrUnavailable, dv.name)
		}
		devs = append(devs, dv)
	}
	for _, n := range p.devices {
		if !slices.ContainsFunc(devs, func(dv device) bool { return dv.name == n }) {
			return nil, fmt.Errorf("%w: dpdk: no cryptodev named %s", driver.ErrUnavailable, n)
		}
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("%w: dpdk: no crypto device (vdev %q, no hardware device found)", driver.ErrUnavailable, strings.Join(p.vdevs, ","))
	}
	if len(devs) > maxDevs {
		devs = devs[:maxDevs]
	}
	for _, dv := range devs {
		claimed[dv.id] = true
	}
	return devs, nil
}

// setup sizes the queue pairs and pools, starts the devices and reads their
// capabilities.
func (d *Driver) setup(p params, workers int) error {
	nqp := workers
	if nqp <= 0 {
		nqp = runtime.NumCPU()
	}
	var sessSize C.uint
	for _, dv := range d.devs {
		nqp = min(nqp, dv.maxQP)
		sessSize = max(sessSize, C.rte_cryptodev_sym_get_private_session_size(C.uint8_t(dv.id)))
	}
	nqp = max(nqp, 1)
	seq := poolSeq.Add(1)
	name := func(kind string) *C.char { return C.CString(fmt.Sprintf("ism_%s_%d", kind, seq)) }
	nops := nqp*len(d.devs)*p.depth + nqp*cBurst
	cn := name("op")
	d.opPool = C.ism_op_pool(cn, C.uint32_t(nops))
	C.free(unsafe.Pointer(cn))
	cn = name("mb")
	d.mbPool = C.ism_mbuf_pool(cn, C.uint32_t(p.mbufs), mbufRoom)
	C.free(unsafe.Pointer(cn))
	cn = name("ss")
	d.sessPool = C.ism_sess_pool(cn, C.uint32_t(p.sessions), C.uint32_t(sessSize))
	C.free(unsafe.Pointer(cn))
	if d.opPool == nil || d.mbPool == nil || d.sessPool == nil {
		return fmt.Errorf("%w: dpdk: cannot create pools of %d ops, %d mbufs of %d bytes and %d sessions of %d bytes (EAL memory: -m)",
			driver.ErrUnavailable, nops, p.mbufs, mbufRoom, p.sessions, sessSize)
	}
	d.mbufs = newMbufSet(d.mbPool, p.mbufs)
	info := driver.Info{QueuePairs: nqp, QueueDepth: p.depth,
		Features: driver.FeatureInPlace | driver.FeatureBufferPool}
	if len(d.devs) > 1 {
		info.Features |= driver.FeatureOutOfOrder
	}
	for _, dv := range d.devs {
		if r := C.ism_dev_setup(C.uint8_t(dv.id), C.uint16_t(nqp), C.uint32_t(p.depth)); r < 0 {
			return fmt.Errorf("%w: dpdk: cannot start device %s with %d queue pairs of %d descriptors: %s",
				driver.ErrUnavailable, dv.name, nqp, p.depth, errnoString(r))
		}
		if dv.hw {
			info.Features |= driver.FeatureHardware
		}
		if strings.HasPrefix(dv.pmd, "crypto_aesni") {
			info.Features |= driver.FeatureCPUAESNI
		}
		info.Headroom = max(info.Headroom, dv.headroom)
		info.Tailroom = max(info.Tailroom, dv.tailroom)
	}
	for i, dv := range d.devs {
		d.errSeen[i] = devErrors(dv.id)
	}
	d.prefer = map[transform.Transform][]int{}
	for _, t := range transform.All() {
		a, ok := algoFor(t)
		if !ok {
			continue
		}
		best := -1
		var idx []int
		for i := range d.devs {
			dv := &d.devs[i]
			if !dv.supports(a) {
				continue
			}
			switch r := rank(dv, t); {
			case best < 0 || r < best:
				best, idx = r, []int{i}
			case r == best:
				idx = append(idx, i)
			}
		}
		if idx != nil {
			d.prefer[t] = idx
			info.Capabilities = append(info.Capabilities, driver.Capability{Transform: t, Action: driver.LookasideCrypto})
		}
	}
	d.info = info
	for i := range nqp {
		d.qps = append(d.qps, newQueuePair(d, i))
	}
	return nil
}

// Name returns "dpdk".
func (d *Driver) Name() string { return Name }

// Info reports the transforms some device supports under the lookaside
// crypto action.
func (d *Driver) Info() driver.Info {
	i := d.info
	i.Capabilities = slices.Clone(i.Capabilities)
	return i
}

// Devices returns the names of the devices the driver uses.
func (d *Driver) Devices() []string {
	out := make([]string, len(d.devs))
	for i, dv := range d.devs {
		out[i] = dv.name
	}
	return out
}

// DeviceFor returns the name of the device that sessions of t go to first,
// or "" if none supports it.
func (d *Driver) DeviceFor(t transform.Transform) string {
	if idx := d.prefer[t]; len(idx) > 0 {
		return d.devs[idx[0]].name
	}
	return ""
}

// QueuePair returns queue pair i.
func (d *Driver) QueuePair(i int) driver.QueuePair { return d.qps[i] }

// Events reports device error interrupts and ops the devices failed.
func (d *Driver) Events() <-chan driver.Event { return d.events }

// post sends an event unless the channel is full or closed.
func (d *Driver) post(kind driver.EventKind, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return
	}
	select {
	case d.events <- driver.Event{Driver: Name, Kind: kind, Err: err}:
	default:
	}
}

// checkErrors posts a fault for every device whose error counter moved.
func (d *Driver) checkErrors() {
	for i, dv := range d.devs {
		if devErrors(dv.id) == atomic.LoadUint64(&d.errSeen[i]) {
			continue
		}
		n := devErrors(dv.id)
		if old := atomic.SwapUint64(&d.errSeen[i], n); old != n {
			d.post(driver.EventFault, fmt.Errorf("dpdk: device %s reported %d error interrupts", dv.name, n-old))
		}
	}
}

func devErrors(id uint8) uint64 {
	errs := (*[C.RTE_CRYPTO_MAX_DEVS]uint64)(unsafe.Pointer(&C.ism_dev_errs))
	return atomic.LoadUint64(&errs[id])
}

// Close frees every session, stops the devices and frees the pools. Ops
// still queued are lost.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed.Swap(true) {
		d.mu.Unlock()
		return nil
	}
	for s := range d.sessions {
		s.closed.Store(true)
		s.freeLocked()
	}
	close(d.events)
	d.mu.Unlock()
	d.teardown()
	return nil
}

// teardown stops the devices and frees what setup made.
func (d *Driver) teardown() {
	for _, q := range d.qps {
		q.release()
	}
	claimMu.Lock()
	for _, dv := range d.devs {
		C.ism_dev_close(C.uint8_t(dv.id))
		delete(claimed, dv.id)
	}
	claimMu.Unlock()
	// Buffers the caller still holds keep the mbuf pool alive: their
	// memory must not go away under them.
	if d.mbPool != nil && C.rte_mempool_in_use_count(d.mbPool) > 0 {
		d.log.Warn("dpdk: buffers not freed before Close; keeping their pool", "in-use", int(C.rte_mempool_in_use_count(d.mbPool)))
		d.mbPool = nil
	}
	for _, mp := range []*C.struct_rte_mempool{d.opPool, d.mbPool, d.sessPool} {
		if mp != nil {
			C.ism_mempool_free(mp)
		}
	}
	d.opPool, d.mbPool, d.sessPool = nil, nil, nil
}
