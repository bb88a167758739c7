//go:build dpdk && cgo

package dpdk

/*
#include <rte_mbuf.h>
#include "cdpdk.h"
*/
import "C"

import (
	"slices"
	"unsafe"

	"github.com/ismgw/ism/driver"
)

// AllocBuffers fills bufs with mbufs from the driver's pool and returns how
// many it got. Buffer.Mem is the mbuf's whole buffer (DPDK memory), Off its
// data offset (RTE_PKTMBUF_HEADROOM, 128), Len zero and Handle the rte_mbuf
// pointer. A non-nil bufs[i] is reused, so a caller that keeps its Buffer
// structs allocates nothing. The buffers must be freed before Close.
func (d *Driver) AllocBuffers(bufs []*driver.Buffer) int {
	if d.closed.Load() {
		return 0
	}
	mbs := cArray[C.struct_ism_mb](cBurst)
	defer cFree(mbs)
	n := 0
	for n < len(bufs) {
		want := min(len(bufs)-n, cBurst)
		k := int(C.ism_mbuf_alloc(d.mbPool, &mbs[0], C.uint32_t(want)))
		for k == 0 && want > 1 {
			want /= 2
			k = int(C.ism_mbuf_alloc(d.mbPool, &mbs[0], C.uint32_t(want)))
		}
		if k == 0 {
			break
		}
		for _, mb := range mbs[:k] {
			b := bufs[n]
			if b == nil {
				b = new(driver.Buffer)
				bufs[n] = b
			}
			*b = driver.Buffer{Mem: unsafe.Slice((*byte)(ptr(uintptr(mb.addr))), int(mb.len)), Off: int(mb.off), Handle: uintptr(mb.m)}
			n++
		}
	}
	return n
}

// FreeBuffers returns buffers from AllocBuffers to the pool and clears them;
// buffers the driver does not own are left alone.
func (d *Driver) FreeBuffers(bufs []*driver.Buffer) {
	ms := make([]uint64, 0, min(len(bufs), cBurst))
	flush := func() {
		if len(ms) > 0 {
			C.ism_mbuf_free((*C.uint64_t)(unsafe.Pointer(&ms[0])), C.uint32_t(len(ms)))
			ms = ms[:0]
		}
	}
	for _, b := range bufs {
		if b == nil || !d.mbufs.owns(b) {
			continue
		}
		ms = append(ms, uint64(b.Handle))
		*b = driver.Buffer{}
		if len(ms) == cap(ms) {
			flush()
		}
	}
	flush()
}

// mbufSet recognises the mbufs of one pool from their addresses, so that a
// Buffer's Handle is trusted only when it is one of them.
type mbufSet struct {
	runs []mbufRun
}

// mbufRun is a stretch of mbufs at a constant stride.
type mbufRun struct {
	start, stride uintptr
	n             int
}

func newMbufSet(mp *C.struct_rte_mempool, n int) mbufSet {
	objs := cArray[uint64](n)
	defer cFree(objs)
	got := int(C.ism_mempool_objs(mp, (*C.uint64_t)(unsafe.Pointer(&objs[0])), C.uint32_t(n)))
	addrs := make([]uintptr, 0, got)
	for _, o := range objs[:min(got, n)] {
		addrs = append(addrs, uintptr(o))
	}
	slices.Sort(addrs)
	var s mbufSet
	for i := 0; i < len(addrs); {
		r := mbufRun{start: addrs[i], n: 1}
		if i+1 < len(addrs) {
			r.stride = addrs[i+1] - addrs[i]
			for i+r.n < len(addrs) && addrs[i+r.n] == r.start+uintptr(r.n)*r.stride {
				r.n++
			}
		}
		s.runs = append(s.runs, r)
		i += r.n
	}
	return s
}

// owns reports whether b is one of the pool's mbufs and b.Mem is its whole
// buffer.
func (s *mbufSet) owns(b *driver.Buffer) bool {
	h := b.Handle
	if h == 0 || len(b.Mem) == 0 {
		return false
	}
	found := false
	for _, r := range s.runs {
		if h >= r.start && h < r.start+uintptr(r.n)*max(r.stride, 1) && (r.stride == 0 || (h-r.start)%r.stride == 0) {
			found = true
			break
		}
	}
	if !found {
		return false
	}
	m := (*C.struct_rte_mbuf)(ptr(h))
	return m.buf_addr == unsafe.Pointer(&b.Mem[0]) && len(b.Mem) <= int(m.buf_len)
}
