package ring

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Frame layout of the UMEM: FrameSize-byte chunks, the first half handed
// to the kernel for receiving (the fill ring), the second half kept for
// sending.
const (
	FrameSize = 4096
	// Frames is the number of UMEM frames per socket: 16 MiB.
	Frames = 4096
	// ringSize is the number of descriptors of each of the four rings.
	ringSize = 2048
	// txBudget is the most packets one sendto sends; the kernel's default
	// is 32 (XDP_MAX_TX_SKB_BUDGET raises it where the kernel has it).
	txBudget = 256
)

// xsk is one AF_XDP socket bound to one queue of an interface, with its own
// UMEM (copy mode: the kernel copies packets between the UMEM and its
// socket buffers, which works on any driver, veth included). It is not safe
// for concurrent use; Conn serialises senders and has one receiver.
type xsk struct {
	fd    int
	umem  []byte
	fill  prodRing // frames for the kernel to receive into
	comp  consRing // frames the kernel has sent
	rx    consRing
	tx    prodRing
	free  []uint64 // send frames not in flight
	mmaps [][]byte
}

// ringHdr points at the shared producer and consumer indices of a ring.
// (The kernel's need-wakeup flag is not read: in copy mode only a sendto
// sends, so every send batch makes one.)
type ringHdr struct {
	prod, cons *uint32
	mask       uint32
}

// prodRing is a ring this side produces into (fill, tx).
type prodRing struct {
	ringHdr
	cachedProd uint32
	desc       unsafe.Pointer
}

// consRing is a ring this side consumes from (completion, rx).
type consRing struct {
	ringHdr
	cachedCons uint32
	desc       unsafe.Pointer
}

func (r *prodRing) free() uint32 { return r.mask + 1 - (r.cachedProd - atomic.LoadUint32(r.cons)) }

// publish makes the descriptors written so far visible to the kernel.
func (r *prodRing) publish() { atomic.StoreUint32(r.prod, r.cachedProd) }

func (r *consRing) avail() uint32 { return atomic.LoadUint32(r.prod) - r.cachedCons }

// release gives the consumed descriptors back to the kernel.
func (r *consRing) release() { atomic.StoreUint32(r.cons, r.cachedCons) }

func (r *prodRing) addr(i uint32) *uint64 {
	return (*uint64)(unsafe.Add(r.desc, uintptr(i&r.mask)*8))
}

func (r *prodRing) xdpDesc(i uint32) *unix.XDPDesc {
	return (*unix.XDPDesc)(unsafe.Add(r.desc, uintptr(i&r.mask)*unsafe.Sizeof(unix.XDPDesc{})))
}

func (r *consRing) addr(i uint32) uint64 {
	return *(*uint64)(unsafe.Add(r.desc, uintptr(i&r.mask)*8))
}

func (r *consRing) xdpDesc(i uint32) unix.XDPDesc {
	return *(*unix.XDPDesc)(unsafe.Add(r.desc, uintptr(i&r.mask)*unsafe.Sizeof(unix.XDPDesc{})))
}

// newXSK makes an AF_XDP socket with its UMEM and rings and binds it to
// queue of ifindex in copy mode.
func newXSK(ifindex, queue int) (_ *xsk, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_XDP socket: %w", err)
	}
	x := &xsk{fd: fd}
	defer func() {
		if err != nil {
			x.close()
		}
	}()
	if x.umem, err = unix.Mmap(-1, 0, Frames*FrameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("UMEM: %w", err)
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&x.umem[0]))), Len: uint64(len(x.umem)), Size: FrameSize}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return nil, fmt.Errorf("XDP_UMEM_REG: %w", err)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING, unix.XDP_TX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, ringSize); err != nil {
			return nil, fmt.Errorf("ring size: %w", err)
		}
	}
	var off unix.XDPMmapOffsets
	sz := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS, uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&sz)), 0); e != 0 {
		return nil, fmt.Errorf("XDP_MMAP_OFFSETS: %w", e)
	}
	descSize := unsafe.Sizeof(unix.XDPDesc{})
	var h ringHdr
	var d unsafe.Pointer
	if h, d, err = x.mapRing(off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, 8); err != nil {
		return nil, err
	}
	x.fill = prodRing{ringHdr: h, desc: d}
	if h, d, err = x.mapRing(off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, 8); err != nil {
		return nil, err
	}
	x.comp = consRing{ringHdr: h, desc: d}
	if h, d, err = x.mapRing(off.Rx, unix.XDP_PGOFF_RX_RING, descSize); err != nil {
		return nil, err
	}
	x.rx = consRing{ringHdr: h, desc: d}
	if h, d, err = x.mapRing(off.Tx, unix.XDP_PGOFF_TX_RING, descSize); err != nil {
		return nil, err
	}
	x.tx = prodRing{ringHdr: h, desc: d}
	// Older kernels send 32 packets per sendto whatever this says.
	_ = unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, txBudget)
	// The receive half goes to the fill ring now; the send half is ours.
	for i := range uint32(Frames / 2) {
		*x.fill.addr(x.fill.cachedProd) = uint64(i) * FrameSize
		x.fill.cachedProd++
	}
	x.fill.publish()
	for i := uint64(Frames / 2); i < Frames; i++ {
		x.free = append(x.free, i*FrameSize)
	}
	sa := &unix.SockaddrXDP{Flags: unix.XDP_COPY | unix.XDP_USE_NEED_WAKEUP, Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	// A socket closed just before on the same queue lets go of it from a
	// kernel work item: EBUSY for a moment.
	for tries := 0; ; tries++ {
		err = unix.Bind(fd, sa)
		if err != unix.EBUSY || tries == 100 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("AF_XDP bind to queue %d: %w", queue, err)
	}
	return x, nil
}

// mapRing maps one ring; each entry is size bytes.
func (x *xsk) mapRing(o unix.XDPRingOffset, pgoff int64, size uintptr) (ringHdr, unsafe.Pointer, error) {
	m, err := unix.Mmap(x.fd, pgoff, int(o.Desc)+ringSize*int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return ringHdr{}, nil, fmt.Errorf("ring mmap: %w", err)
	}
	x.mmaps = append(x.mmaps, m)
	base := unsafe.Pointer(&m[0])
	h := ringHdr{prod: (*uint32)(unsafe.Add(base, o.Producer)), cons: (*uint32)(unsafe.Add(base, o.Consumer)), mask: ringSize - 1}
	return h, unsafe.Add(base, o.Desc), nil
}

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0); e != 0 {
		return e
	}
	return nil
}

// frame returns the UMEM bytes of the frame at addr.
func (x *xsk) frame(addr uint64) []byte { return x.umem[addr : addr+FrameSize : addr+FrameSize] }

// reclaim moves sent frames from the completion ring to the free list.
func (x *xsk) reclaim() {
	n := x.comp.avail()
	for range n {
		x.free = append(x.free, x.comp.addr(x.comp.cachedCons))
		x.comp.cachedCons++
	}
	if n > 0 {
		x.comp.release()
	}
}

// kick asks the kernel to send what the tx ring holds. It returns once the
// kernel has taken every descriptor, or with the error that stopped it.
//
// The sendto is a raw system call, which keeps the goroutine's P: it never
// blocks (MSG_DONTWAIT), but in copy mode it runs the whole batch through
// the driver, and on a veth the peer's receive too, tens of microseconds of
// this core's work. Through the runtime's system call path the scheduler
// would count that as a blocked thread, hand the P to another thread after
// 20 µs (sysmon) and make this one wait for a P when it returns: two
// context switches a batch, for a core that was never free.
func (x *xsk) kick() error {
	for tries := 0; atomic.LoadUint32(x.tx.cons) != x.tx.cachedProd; tries++ {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(x.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0, unix.EAGAIN, unix.EBUSY, unix.EINTR:
			// EAGAIN: the budget ran out or the device is busy; go on.
		default:
			return e
		}
		if tries > 1000 {
			return unix.EAGAIN
		}
	}
	return nil
}

// refill hands received frames back to the kernel.
func (x *xsk) refill(addrs []uint64) {
	for _, a := range addrs {
		*x.fill.addr(x.fill.cachedProd) = a
		x.fill.cachedProd++
	}
	x.fill.publish()
}

func (x *xsk) close() {
	for _, m := range x.mmaps {
		_ = unix.Munmap(m)
	}
	x.mmaps = nil
	if x.fd >= 0 {
		_ = unix.Close(x.fd)
		x.fd = -1
	}
	if x.umem != nil {
		_ = unix.Munmap(x.umem)
		x.umem = nil
	}
}

// stats returns the socket's kernel counters.
func (x *xsk) stats() unix.XDPStatistics {
	var s unix.XDPStatistics
	sz := uint32(unsafe.Sizeof(s))
	_, _, _ = unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(x.fd), unix.SOL_XDP, unix.XDP_STATISTICS, uintptr(unsafe.Pointer(&s)), uintptr(unsafe.Pointer(&sz)), 0)
	return s
}
