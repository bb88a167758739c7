package swantest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ip runs the ip command.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("swantest: ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

var seq atomic.Uint32

// uniqueNames returns namespace and veth names unique to this process and
// call: veth names fit IFNAMSIZ.
func uniqueNames() (nsA, nsB, vethA, vethB string) {
	n := seq.Add(1)
	id := fmt.Sprintf("%d-%d", os.Getpid(), n)
	short := fmt.Sprintf("%05d%02d", os.Getpid()%100000, n%100)
	return "ismA-" + id, "swanB-" + id, "via" + short, "vib" + short
}

// InNamespace runs f on an OS thread that has entered the named network
// namespace, then returns the thread to the original one. Sockets f opens
// stay in the namespace.
func InNamespace(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("swantest: setns %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread is in the wrong namespace: let it die with the
			// goroutine instead of returning it to the scheduler.
			errc <- fmt.Errorf("swantest: setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
