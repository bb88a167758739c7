package kernel

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsDir is where iproute2 ("ip netns add") keeps named namespaces.
const netnsDir = "/run/netns"

// openNetNS opens a network namespace by iproute2 name or by path (such as
// /proc/PID/ns/net) and returns its file descriptor.
func openNetNS(name string) (int, error) {
	path := name
	if !strings.ContainsRune(name, '/') {
		path = filepath.Join(netnsDir, name)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("kernel: open network namespace %q: %w", name, err)
	}
	return fd, nil
}

// inNetNS runs fn on a locked OS thread that has entered the namespace nsfd
// (or, with newNS, a fresh namespace of its own), then returns the thread to
// its namespace. A thread that cannot get back is never unlocked, so the Go
// runtime ends it with the goroutine: no other goroutine runs in the wrong
// namespace. Sockets that fn opens stay in the namespace they were made in.
func inNetNS(nsfd int, newNS bool, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("kernel: open own network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if newNS {
			err = unix.Unshare(unix.CLONE_NEWNET)
		} else {
			err = unix.Setns(nsfd, unix.CLONE_NEWNET)
		}
		if err != nil {
			// Nothing changed on failure; the thread is still clean.
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("kernel: enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
