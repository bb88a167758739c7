//go:build dpdk && cgo

package dpdk

/*
#cgo pkg-config: libdpdk
#cgo CFLAGS: -O2 -DALLOW_EXPERIMENTAL_API -Wno-deprecated-declarations
#cgo LDFLAGS: -lrte_bus_vdev
#include <stdlib.h>
#include <rte_cryptodev.h>
#include <rte_mbuf.h>
#include "cdpdk.h"
*/
import "C"

import (
	"syscall"
	"unsafe"
)

// Sizes shared with the C side.
const (
	maxDevs  = C.ISM_MAX_DEVS
	cBurst   = C.ISM_BURST
	descSize = C.sizeof_struct_ism_desc
)

// errnoString names a DPDK return code (a negative errno).
func errnoString(r C.int) string {
	if r < 0 {
		r = -r
	}
	return syscall.Errno(r).Error()
}

// cArray returns a Go slice over n elements of C memory of type T.
func cArray[T any](n int) []T {
	var zero T
	p := C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(zero)))
	if p == nil {
		panic("dpdk: out of C memory")
	}
	return unsafe.Slice((*T)(p), n)
}

// cFree frees C memory returned by cArray.
func cFree[T any](s []T) {
	if len(s) > 0 {
		C.free(unsafe.Pointer(&s[0]))
	}
}

// ptr turns an address held as an integer (an mbuf handle) back into a
// pointer, without the uintptr-to-pointer conversion vet rightly flags for
// Go memory: these addresses are always C memory.
func ptr(h uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&h)) }
