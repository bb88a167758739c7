// Package netns runs code inside Linux network namespaces, the homes of
// ISM's virtual routers and of the test networks: it opens a namespace by
// its iproute2 name ("ip netns add", kept in /run/netns) or by path, and
// runs a function on a locked OS thread that has entered it. Sockets and
// devices the function creates stay in the namespace after it returns.
//
// A thread that cannot get back to its own namespace is never unlocked, so
// the Go runtime ends it with its goroutine: no other goroutine ever runs
// in the wrong namespace.
package netns

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is where iproute2 keeps named network namespaces.
const Dir = "/run/netns"

// NS is an open network namespace. Its zero value is not usable; call
// Open. It is safe for concurrent use until Close.
type NS struct {
	name string
	fd   int
}

// Open opens a namespace by its iproute2 name, or by path when name has a
// slash (/proc/PID/ns/net); "" is the process's own namespace.
func Open(name string) (*NS, error) {
	path := name
	switch {
	case name == "":
		path = "/proc/self/ns/net"
	case !strings.ContainsRune(name, '/'):
		path = filepath.Join(Dir, name)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("netns: open network namespace %q: %w", name, err)
	}
	return &NS{name: name, fd: fd}, nil
}

// Name returns the name the namespace was opened by.
func (n *NS) Name() string { return n.name }

// FD returns the namespace's file descriptor, for netlink sockets opened
// in it and links moved into it. It is valid until Close.
func (n *NS) FD() int { return n.fd }

// Do runs fn on a locked OS thread inside the namespace and returns fn's
// error, or why the thread could not enter it.
func (n *NS) Do(fn func() error) error {
	return onThread(func() error {
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("netns: enter network namespace %q: %w", n.name, err)
		}
		return nil
	}, fn)
}

// Close closes the namespace's file descriptor; the namespace itself
// stays.
func (n *NS) Close() error { return unix.Close(n.fd) }

// Do runs fn inside the named namespace (see Open and NS.Do).
func Do(name string, fn func() error) error {
	n, err := Open(name)
	if err != nil {
		return err
	}
	defer n.Close()
	return n.Do(fn)
}

// Fresh runs fn on a locked OS thread inside a new, empty network
// namespace of its own, which disappears when nothing holds it any more
// (a probe that must not touch the real one).
func Fresh(fn func() error) error {
	return onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("netns: new network namespace: %w", err)
		}
		return nil
	}, fn)
}

// onThread runs enter then fn on a locked OS thread of a goroutine of its
// own and returns the thread to its namespace. A failed enter changes
// nothing, so the thread is unlocked; a failed return keeps it locked.
func onThread(enter, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: open own network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := enter(); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netns: return to own network namespace: %w (after: %v)", err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
