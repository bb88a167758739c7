package ism

import (
	"fmt"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` keeps named network namespaces.
const netnsDir = "/run/netns"

// netns is an open network namespace: the home of a virtual router. The zero
// name is the daemon's own namespace. A netns is safe for concurrent use.
type netns struct {
	name string
	fd   int
}

// openNetns opens the named namespace, or the daemon's own for "".
func openNetns(name string) (*netns, error) {
	path := "/proc/self/ns/net"
	if name != "" {
		path = filepath.Join(netnsDir, name)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ism: network namespace %q: %w", name, err)
	}
	return &netns{name: name, fd: fd}, nil
}

// do runs fn on an OS thread inside the namespace. Sockets and devices fn
// creates stay in the namespace after it returns.
func (n *netns) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("ism: current network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("ism: enter network namespace %q: %w", n.name, err)
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

func (n *netns) close() error { return unix.Close(n.fd) }
