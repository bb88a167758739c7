// Package netlab builds test networks out of Linux network namespaces and
// veth pairs, with iproute2, and cleans them up: each namespace a test makes
// has a unique name and is deleted when the test ends, with every process
// the test started in it killed by pid.
package netlab

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var seq atomic.Uint32

// TB is what a Lab reports to: a *testing.T, or a benchmark harness that
// implements the same few methods.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Skip(args ...any)
	Cleanup(func())
}

// Lab is one test's set of namespaces.
type Lab struct {
	t      TB
	prefix string
	mu     sync.Mutex
	ns     []string
	procs  []*exec.Cmd
}

// New returns a lab for t. It skips the test when not run as root, since
// namespaces need it.
func New(t TB) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and veth pairs")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2 (ip) is required: %v", err)
	}
	l := &Lab{t: t, prefix: fmt.Sprintf("ism%d-%d", os.Getpid()%100000, seq.Add(1))}
	t.Cleanup(l.cleanup)
	return l
}

// NS creates a namespace and returns its full name; loopback is up.
func (l *Lab) NS(name string) string {
	l.t.Helper()
	full := l.prefix + name
	l.MustRun("", "ip", "netns", "add", full)
	l.mu.Lock()
	l.ns = append(l.ns, full)
	l.mu.Unlock()
	l.MustRun(full, "ip", "link", "set", "lo", "up")
	return full
}

// Link joins namespaces a and b with a veth pair named ifA (in a) and ifB
// (in b), up, with the given addresses (invalid prefixes are skipped).
func (l *Lab) Link(a, ifA string, addrA netip.Prefix, b, ifB string, addrB netip.Prefix) {
	l.t.Helper()
	n := seq.Add(1)
	tmpA, tmpB := fmt.Sprintf("v%d-%da", os.Getpid()%100000, n), fmt.Sprintf("v%d-%db", os.Getpid()%100000, n)
	l.MustRun("", "ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	l.MustRun("", "ip", "link", "set", tmpA, "netns", a, "name", ifA)
	l.MustRun("", "ip", "link", "set", tmpB, "netns", b, "name", ifB)
	for _, e := range []struct {
		ns, ifc string
		p       netip.Prefix
	}{{a, ifA, addrA}, {b, ifB, addrB}} {
		if e.p.IsValid() {
			args := []string{"ip", "addr", "add", e.p.String(), "dev", e.ifc}
			if e.p.Addr().Is6() {
				args = append(args, "nodad")
			}
			l.MustRun(e.ns, args...)
		}
		l.MustRun(e.ns, "ip", "link", "set", e.ifc, "up")
	}
}

// Run runs a command, in namespace ns unless ns is "", and returns its
// combined output.
func (l *Lab) Run(ns string, args ...string) (string, error) {
	cmd := l.Command(ns, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// MustRun is Run that fails the test on error.
func (l *Lab) MustRun(ns string, args ...string) string {
	l.t.Helper()
	out, err := l.Run(ns, args...)
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Command returns a command that runs in namespace ns.
func (l *Lab) Command(ns string, args ...string) *exec.Cmd {
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	return exec.Command(args[0], args[1:]...)
}

// Start starts a command in ns and kills it by pid when the test ends.
func (l *Lab) Start(cmd *exec.Cmd) {
	l.t.Helper()
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	l.mu.Unlock()
}

func (l *Lab) cleanup() {
	l.mu.Lock()
	procs, nss := l.procs, l.ns
	l.mu.Unlock()
	for _, c := range procs {
		if c.Process != nil && c.ProcessState == nil {
			_ = c.Process.Kill()
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
		}
	}
	for _, ns := range nss {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Logf("ip netns del %s: %v %s", ns, err, out)
		}
	}
}
