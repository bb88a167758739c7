package vr

import (
	"fmt"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` keeps named network namespaces.
const netnsDir = "/run/netns"

// Netns is an open network namespace: the home of a virtual router. The
// zero name is the daemon's own namespace. A Netns is safe for concurrent
// use; its zero value is not usable (OpenNetns).
type Netns struct {
	name string
	fd   int
}

// OpenNetns opens the named namespace, or the daemon's own for "".
func OpenNetns(name string) (*Netns, error) {
	path := "/proc/self/ns/net"
	if name != "" {
		path = filepath.Join(netnsDir, name)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vr: network namespace %q: %w", name, err)
	}
	return &Netns{name: name, fd: fd}, nil
}

// Name returns the namespace's name, "" for the daemon's own.
func (n *Netns) Name() string { return n.name }

// FD returns the namespace's file descriptor, for netlink sockets opened in
// it.
func (n *Netns) FD() int { return n.fd }

// Do runs fn on an OS thread inside the namespace. Sockets and devices fn
// creates stay in the namespace after it returns.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("vr: current network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("vr: enter network namespace %q: %w", n.name, err)
			return
		}
		err = fn()
		if unix.Setns(orig, unix.CLONE_NEWNET) != nil {
			// The thread stays locked and dies with this goroutine
			// rather than run other goroutines in the wrong namespace.
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// Close closes the namespace's descriptor.
func (n *Netns) Close() error { return unix.Close(n.fd) }
