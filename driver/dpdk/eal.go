//go:build dpdk && cgo

package dpdk

/*
#include <stdlib.h>
#include <rte_cryptodev.h>
#include "cdpdk.h"
*/
import "C"

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/driver"
)

// DefaultVdevs are the software devices the driver creates when the "vdev"
// parameter is not given, in no particular order (see rank for preference).
var DefaultVdevs = []string{"crypto_aesni_gcm", "crypto_aesni_mb", "crypto_chacha20_poly1305", "crypto_openssl"}

// eal is the process's one Environment Abstraction Layer.
var eal struct {
	mu   sync.Mutex
	done bool
	args string // what it was started with
	err  error  // why it failed; EAL cannot be started twice
}

// startEAL initialises EAL once per process with args. EAL cannot be
// restarted: a later call returns the first outcome, and fails when explicit
// arguments differ from those EAL runs with.
func startEAL(args []string, explicit bool) error {
	eal.mu.Lock()
	defer eal.mu.Unlock()
	joined := strings.Join(args, " ")
	if eal.done {
		if eal.err == nil && explicit && joined != eal.args {
			return fmt.Errorf("%w: dpdk: EAL already runs with %q, cannot restart it with %q", driver.ErrUnavailable, eal.args, joined)
		}
		return eal.err
	}
	eal.done, eal.args = true, joined
	// rte_eal_init pins its thread to the main lcore's CPU. Run it on an
	// OS thread of its own that dies with this goroutine, so that no
	// other goroutine inherits that affinity.
	errc := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with us
		errc <- ealInit(args)
	}()
	eal.err = <-errc
	return eal.err
}

func ealInit(args []string) error {
	argv := make([]*C.char, 0, len(args)+1)
	argv = append(argv, C.CString("ism"))
	for _, a := range args {
		argv = append(argv, C.CString(a))
	}
	// EAL keeps argv: the strings are never freed.
	cargv := (**C.char)(C.calloc(C.size_t(len(argv)+1), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	copy(unsafe.Slice(cargv, len(argv)), argv)
	var msg [256]C.char
	if r := C.ism_eal_init(C.int(len(argv)), cargv, &msg[0], C.int(len(msg))); r < 0 {
		return fmt.Errorf("%w: dpdk: rte_eal_init(%s) failed: %s", driver.ErrUnavailable, strings.Join(args, " "), C.GoString(&msg[0]))
	}
	return nil
}

// ealArgs returns the EAL arguments for params: "eal" verbatim when given,
// otherwise the defaults for this host plus one --vdev per software device.
func ealArgs(params map[string]string, vdevs []string) []string {
	if s, ok := params["eal"]; ok {
		return strings.Fields(s)
	}
	args := []string{"-l", strconv.Itoa(firstCPU())}
	if hugepagesReady() {
		// Hugepages mounted and free: PCI devices (QAT) can DMA, so
		// scan the PCI bus; keep no files behind.
		args = append(args, "--in-memory")
	} else {
		args = append(args, "--no-huge", "-m", "512", "--no-pci", "--no-shconf")
	}
	args = append(args, "--no-telemetry", "--log-level=*:warning")
	for _, v := range vdevs {
		args = append(args, "--vdev", v)
	}
	return args
}

// firstCPU returns the first CPU the process may run on, for EAL's main
// lcore.
func firstCPU() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil {
		for i := range 1024 {
			if set.IsSet(i) {
				return i
			}
		}
	}
	return 0
}

// hugepagesReady reports whether a hugetlbfs is mounted and has free pages;
// EAL fails without both (reserved pages but no mount: "no mounted
// hugetlbfs found for that size").
func hugepagesReady() bool {
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil || !strings.Contains(string(mounts), " hugetlbfs ") {
		return false
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "HugePages_Free:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n > 0
		}
	}
	return false
}

// ensureVdev creates a software device after EAL has started, unless it
// exists.
func ensureVdev(name string) error {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	if C.rte_cryptodev_get_dev_id(cs) >= 0 {
		return nil
	}
	if r := C.ism_vdev_init(cs); r < 0 {
		why := errnoString(r)
		if r == -1 {
			why = "no poll mode driver of that name, or its probe failed"
		}
		return fmt.Errorf("%w: dpdk: cannot create device %s: %s", driver.ErrUnavailable, name, why)
	}
	return nil
}
