//go:build dpdk && cgo

package dpdk

/*
#include <stdlib.h>
#include <rte_crypto.h>
#include <rte_mbuf.h>
#include "cdpdk.h"
*/
import "C"

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/ismgw/ism/driver"
)

// slot is an op in flight on a device.
type slot struct {
	op  *driver.Op
	s   *session
	mb  C.struct_ism_mb // the mbuf the packet was copied into (m == 0: none)
	ext int             // bytes copied and to copy back
}

// queuePair drives queue pair i of every device of the driver. Per burst
// it makes one cgo call to build and enqueue the crypto ops and one to
// dequeue them; the software PMDs do their work inside dequeue.
//
// Ops on driver buffers (BufferPool) go to the device in place. Ops on any
// other memory are copied into an mbuf from the queue pair's stash on
// enqueue and back on completion.
//
// A queue pair is not safe for concurrent use.
type queuePair struct {
	d     *Driver
	c     *C.struct_ism_qp
	desc  []C.struct_ism_desc // C memory: one burst of descriptors
	done  []C.struct_ism_done // C memory: one burst of completions
	slots []slot
	free  []uint32 // free slot indices
	// local holds ops completed without a device (bad session or
	// arguments); Dequeue returns them first.
	local     []*driver.Op
	localHead int
	pos       [cBurst]int32 // position in the chunk of each descriptor
	localAt   [cBurst]int32 // position in the chunk of each local completion
	stash     []C.struct_ism_mb
	refill    []C.struct_ism_mb // C memory for ism_mbuf_alloc
	inflight  int
	dead      C.uint32_t // devices reported as not taking ops

	enqueued, dequeued, short, faults atomic.Uint64
}

// stashTarget is how many copy buffers a refill tops the stash up to.
const stashTarget = 64

func newQueuePair(d *Driver, i int) *queuePair {
	n := len(d.devs)*d.depth + cBurst
	q := &queuePair{d: d, slots: make([]slot, n), free: make([]uint32, n), local: make([]*driver.Op, 0, n),
		desc: cArray[C.struct_ism_desc](cBurst), done: cArray[C.struct_ism_done](cBurst),
		refill: cArray[C.struct_ism_mb](stashTarget), stash: make([]C.struct_ism_mb, 0, n)}
	for j := range q.free {
		q.free[j] = uint32(n - 1 - j)
	}
	c := cArray[C.struct_ism_qp](1)
	q.c = &c[0]
	q.c.op_pool = d.opPool
	q.c.qp = C.uint16_t(i)
	q.c.ndev = C.uint16_t(len(d.devs))
	for j, dv := range d.devs {
		q.c.devs[j] = C.uint8_t(dv.id)
	}
	return q
}

// release returns the stash to the pool and frees the C memory.
func (q *queuePair) release() {
	ms := make([]uint64, 0, len(q.stash))
	for _, mb := range q.stash {
		ms = append(ms, uint64(mb.m))
	}
	for i := range q.slots {
		if q.slots[i].mb.m != 0 {
			ms = append(ms, uint64(q.slots[i].mb.m))
		}
	}
	if len(ms) > 0 {
		C.ism_mbuf_free((*C.uint64_t)(unsafe.Pointer(&ms[0])), C.uint32_t(len(ms)))
	}
	q.stash = nil
	clear(q.slots)
	cFree(q.desc)
	cFree(q.done)
	cFree(q.refill)
	cFree(unsafe.Slice(q.c, 1))
	q.desc, q.done, q.refill, q.c = nil, nil, nil, nil
}

// Enqueue accepts ops from the front of ops until the devices' queues or
// the queue pair's slots are full. An op with a closed or foreign session
// or out-of-range offsets is accepted and completes with InvalidSession or
// InvalidArgs without reaching a device.
func (q *queuePair) Enqueue(ops []*driver.Op) int {
	n := 0
	for n < len(ops) {
		chunk := ops[n:min(len(ops), n+cBurst)]
		k := q.enqueue(chunk)
		n += k
		if k < len(chunk) {
			q.short.Add(1)
			break
		}
	}
	q.enqueued.Add(uint64(n))
	return n
}

// enqueue fills one burst of descriptors and makes one cgo call.
func (q *queuePair) enqueue(ops []*driver.Op) int {
	if q.d.closed.Load() {
		k := min(len(ops), cap(q.local)-len(q.local))
		for _, op := range ops[:k] {
			op.Status = driver.InvalidSession
			q.local = append(q.local, op)
		}
		return k
	}
	nd, stop := 0, len(ops)
	nl := 0          // local completions made in this call
	var run *session // session of the current run of ops, holding a base reference
	var runRefs int64
	for i, op := range ops {
		s, _ := op.Session.(*session)
		st := driver.InvalidSession
		if s != nil && s.d == q.d {
			if s != run {
				endRun(run, runRefs)
				run, runRefs = nil, 0
				if s.acquire() {
					run = s
				}
			}
			if s == run {
				st = driver.NotProcessed
			}
		}
		if st == driver.NotProcessed {
			if len(q.free) == 0 {
				stop = i
				break
			}
			idx := q.free[len(q.free)-1]
			var busy bool
			if st, busy = q.fill(&q.desc[nd], op, s, idx); busy {
				stop = i
				break
			}
			if st == driver.NotProcessed {
				q.free = q.free[:len(q.free)-1]
				q.pos[nd] = int32(i)
				nd++
				runRefs++
				continue
			}
		}
		if len(q.local) == cap(q.local) {
			stop = i
			break
		}
		op.Status = st
		q.local = append(q.local, op)
		q.localAt[nl] = int32(i)
		nl++
	}
	endRun(run, runRefs)
	acc := 0
	if nd > 0 {
		acc = int(C.ism_enqueue(q.c, &q.desc[0], C.uint32_t(nd)))
	}
	q.inflight += acc
	if q.c.dead != q.dead {
		q.reportDead()
	}
	if acc == nd {
		return stop
	}
	// The devices took less: undo from the first descriptor refused,
	// including local completions queued after it.
	stop = int(q.pos[acc])
	for j := acc; j < nd; j++ {
		idx := uint32(q.desc[j].slot)
		sl := &q.slots[idx]
		sl.s.release(1)
		if sl.mb.m != 0 {
			q.stash = append(q.stash, sl.mb)
		}
		*sl = slot{}
		q.free = append(q.free, idx)
	}
	for nl > 0 && int(q.localAt[nl-1]) > stop {
		nl--
		q.local = q.local[:len(q.local)-1]
	}
	return stop
}

// reportDead posts a fault for each device newly found not taking ops. Its
// ops in flight never come back: the caller's queue is stuck, and offload
// moves the driver's SAs to the fallback engine on the fault.
func (q *queuePair) reportDead() {
	for i, dv := range q.d.devs {
		if bit := C.uint32_t(1) << i; q.c.dead&bit != 0 && q.dead&bit == 0 {
			q.d.post(driver.EventFault, fmt.Errorf("dpdk: device %s does not take ops on queue pair %d: stopped or unconfigured", dv.name, q.c.qp))
		}
	}
	q.dead = q.c.dead
}

// endRun turns a run's base reference into one per accepted op.
func endRun(s *session, n int64) {
	if s == nil {
		return
	}
	if n > 0 {
		s.refs.Add(n)
	}
	s.release(1)
}

// fill checks op against its session and buffer and writes its descriptor.
// busy means no copy buffer was to be had: backpressure, not an error.
func (q *queuePair) fill(d *C.struct_ism_desc, op *driver.Op, s *session, idx uint32) (st driver.Status, busy bool) {
	b := op.Buf
	if b == nil || b.Off < 0 || b.Len < 0 || b.Off+b.Len > len(b.Mem) || op.CipherLen < 0 || op.AuthLen < 0 {
		return driver.InvalidArgs, false
	}
	room := len(b.Mem) - b.Off
	ext := b.Len
	in := func(off, n int) bool {
		if off < 0 || n < 0 || off > room-n {
			return false
		}
		ext = max(ext, off+n)
		return true
	}
	d.kind = C.uint8_t(s.kind)
	d.iv_len = C.uint8_t(s.ivLen)
	d.c_off, d.c_len, d.a_off, d.a_len, d.d_off = 0, 0, 0, 0, 0
	if s.kind == C.ISM_KIND_AEAD {
		if op.IVLen != 8 || op.AADLen != s.aadLen || op.DigestOff != op.CipherOff+op.CipherLen ||
			!in(op.CipherOff, op.CipherLen+s.icvLen) {
			return driver.InvalidArgs, false
		}
		iv := (*[16]byte)(unsafe.Pointer(&d.iv))
		copy(iv[:4], s.salt[:])
		copy(iv[4:12], op.IV[:8])
		copy((*[16]byte)(unsafe.Pointer(&d.aad))[:], op.AAD[:])
		d.c_off, d.c_len, d.d_off = C.uint32_t(op.CipherOff), C.uint32_t(op.CipherLen), C.uint32_t(op.DigestOff)
		d.aad_len = C.uint8_t(s.aadLen)
	} else {
		d.aad_len = 0
		if s.cipher {
			if int(op.IVLen) != s.block || op.CipherLen%s.block != 0 || !in(op.CipherOff, op.CipherLen) {
				return driver.InvalidArgs, false
			}
			copy((*[16]byte)(unsafe.Pointer(&d.iv))[:], op.IV[:])
			d.c_off, d.c_len = C.uint32_t(op.CipherOff), C.uint32_t(op.CipherLen)
		}
		if s.auth {
			if !in(op.AuthOff, op.AuthLen) || !in(op.DigestOff, s.icvLen) {
				return driver.InvalidArgs, false
			}
			d.a_off, d.a_len, d.d_off = C.uint32_t(op.AuthOff), C.uint32_t(op.AuthLen), C.uint32_t(op.DigestOff)
		}
	}
	sl := &q.slots[idx]
	if q.d.mbufs.owns(b) {
		d.m = C.uint64_t(b.Handle)
		d.data_off = C.uint16_t(b.Off)
	} else {
		if len(q.stash) == 0 && !q.refillStash() {
			return driver.NotProcessed, true
		}
		mb := q.stash[len(q.stash)-1]
		if int(mb.off)+ext > int(mb.len) {
			return driver.InvalidArgs, false
		}
		q.stash = q.stash[:len(q.stash)-1]
		mem := unsafe.Slice((*byte)(ptr(uintptr(mb.addr))), int(mb.len))
		copy(mem[mb.off:int(mb.off)+ext], b.Mem[b.Off:b.Off+ext])
		sl.mb, sl.ext = mb, ext
		d.m = mb.m
		d.data_off = C.uint16_t(mb.off)
	}
	d.data_len = C.uint16_t(ext)
	d.sess = C.uint64_t(uintptr(s.handle))
	d.slot = C.uint32_t(idx)
	d.dev = C.uint8_t(s.dev)
	sl.op, sl.s = op, s
	return driver.NotProcessed, false
}

// refillStash allocates copy buffers; false when the pool is empty.
func (q *queuePair) refillStash() bool {
	n := int(C.ism_mbuf_alloc(q.d.mbPool, &q.refill[0], stashTarget))
	if n == 0 {
		n = int(C.ism_mbuf_alloc(q.d.mbPool, &q.refill[0], 1))
	}
	q.stash = append(q.stash, q.refill[:n]...)
	return n > 0
}

// Dequeue returns local completions first, then what the devices have
// finished, with one cgo call per burst.
func (q *queuePair) Dequeue(ops []*driver.Op) int {
	n := 0
	if q.localHead < len(q.local) {
		k := copy(ops, q.local[q.localHead:])
		clear(q.local[q.localHead : q.localHead+k])
		q.localHead += k
		n = k
		if q.localHead == len(q.local) {
			q.local, q.localHead = q.local[:0], 0
		}
	}
	for n < len(ops) && q.inflight > 0 && q.c != nil {
		k := int(C.ism_dequeue(q.c, &q.done[0], C.uint32_t(min(len(ops)-n, cBurst))))
		if q.c.dead != q.dead {
			q.reportDead()
		}
		if k == 0 {
			break
		}
		q.inflight -= k
		var run *session
		var runRefs int64
		for _, dn := range q.done[:k] {
			idx := uint32(dn.slot)
			sl := &q.slots[idx]
			op := sl.op
			op.Status = q.status(dn.status)
			if sl.mb.m != 0 {
				if op.Status == driver.OK {
					mem := unsafe.Slice((*byte)(ptr(uintptr(sl.mb.addr))), int(sl.mb.len))
					copy(op.Buf.Mem[op.Buf.Off:op.Buf.Off+sl.ext], mem[sl.mb.off:])
				}
				q.stash = append(q.stash, sl.mb)
			}
			if sl.s != run {
				q.releaseRun(run, runRefs)
				run, runRefs = sl.s, 0
			}
			runRefs++
			*sl = slot{}
			q.free = append(q.free, idx)
			ops[n] = op
			n++
		}
		q.releaseRun(run, runRefs)
	}
	q.d.checkErrors()
	q.dequeued.Add(uint64(n))
	return n
}

func (q *queuePair) releaseRun(s *session, n int64) {
	if s != nil && n > 0 {
		s.release(n)
	}
}

// status maps rte_crypto_op_status onto driver.Status.
func (q *queuePair) status(s C.uint8_t) driver.Status {
	switch s {
	case C.RTE_CRYPTO_OP_STATUS_SUCCESS:
		return driver.OK
	case C.RTE_CRYPTO_OP_STATUS_AUTH_FAILED:
		return driver.AuthFailed
	case C.RTE_CRYPTO_OP_STATUS_INVALID_SESSION:
		return driver.InvalidSession
	case C.RTE_CRYPTO_OP_STATUS_INVALID_ARGS:
		return driver.InvalidArgs
	}
	if q.faults.Add(1) == 1 {
		q.d.post(driver.EventFault, fmt.Errorf("dpdk: a device failed an op (status %d)", uint8(s)))
	}
	return driver.Fault
}

// Stats returns the queue pair's counters.
func (q *queuePair) Stats() driver.QueueStats {
	return driver.QueueStats{Enqueued: q.enqueued.Load(), Dequeued: q.dequeued.Load(),
		EnqueueErrors: q.short.Load(), Faults: q.faults.Load()}
}
