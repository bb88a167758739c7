package charon

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Addresses on an Env's veth link (RFC 5737 documentation range).
var (
	ISMAddr  = netip.MustParseAddr("192.0.2.1")
	SwanAddr = netip.MustParseAddr("192.0.2.2")
)

// Env is a pair of network namespaces joined by a veth link, ISM's
// (NSISM, with ISMAddr) and charon's (NSSwan, with SwanAddr), and the
// charon that runs in the second. Protected subnets: an address of
// 198.51.100.0/24 on ISM's loopback, of 203.0.113.0/24 (both halves) on
// charon's. Its zero value is not usable: call NewEnv. Its methods are for
// one goroutine.
type Env struct {
	t      TB
	Dir    string // charon's files
	NSISM  string // ISM's namespace
	NSSwan string // charon's namespace
	ch     *Charon
}

// Available returns why charon cannot run here, or nil.
func Available() error {
	if _, err := os.Stat(Binary); err != nil {
		return fmt.Errorf("charon: strongSwan's charon is required (apt-get install strongswan-charon strongswan-swanctl libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins): %w", err)
	}
	return nil
}

// NewEnv creates the namespaces and the link, with charon's files to go in
// dir; t's cleanup stops charon and deletes the namespaces.
func NewEnv(t TB, dir string) *Env {
	t.Helper()
	nsA, nsB, va, vb := uniqueNames()
	e := &Env{t: t, Dir: dir, NSISM: nsA, NSSwan: nsB}
	t.Cleanup(e.cleanup)
	steps := [][]string{
		{"netns", "add", nsA},
		{"netns", "add", nsB},
		{"link", "add", va, "type", "veth", "peer", "name", vb},
		{"link", "set", va, "netns", nsA},
		{"link", "set", vb, "netns", nsB},
		{"-n", nsA, "link", "set", "lo", "up"},
		{"-n", nsB, "link", "set", "lo", "up"},
		{"-n", nsA, "addr", "add", ISMAddr.String() + "/24", "dev", va},
		{"-n", nsB, "addr", "add", SwanAddr.String() + "/24", "dev", vb},
		{"-n", nsA, "link", "set", va, "up"},
		{"-n", nsB, "link", "set", vb, "up"},
		// An address inside each side's protected subnet: charon installs
		// its routes from one.
		{"-n", nsA, "addr", "add", "198.51.100.1/32", "dev", "lo"},
		{"-n", nsB, "addr", "add", "203.0.113.1/32", "dev", "lo"},
		{"-n", nsB, "addr", "add", "203.0.113.129/32", "dev", "lo"},
	}
	runIP(t, steps)
	return e
}

func (e *Env) cleanup() {
	e.StopCharon()
	for _, ns := range []string{e.NSISM, e.NSSwan} {
		_ = ip("netns", "del", ns)
	}
}

// AddPeer adds a second charon namespace: a namespace of its own, joined
// to ISM's namespace by a veth pair of its own, with addr (another
// address of 192.0.2.0/24, e.g. 192.0.2.3) on charon's side and its files
// in dir. ISM's side of the link has no address: a host route sends addr's
// traffic from ISMAddr over it. The returned Env shares NSISM with e; its
// namespace is deleted when t ends (before e's, which holds ISM's).
func (e *Env) AddPeer(t TB, dir string, addr netip.Addr) *Env {
	t.Helper()
	_, ns, va, vb := uniqueNames()
	p := &Env{t: t, Dir: dir, NSISM: e.NSISM, NSSwan: ns}
	t.Cleanup(func() {
		p.StopCharon()
		_ = ip("netns", "del", ns)
	})
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", va, "type", "veth", "peer", "name", vb},
		{"link", "set", va, "netns", e.NSISM},
		{"link", "set", vb, "netns", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", addr.String() + "/24", "dev", vb},
		{"-n", ns, "link", "set", vb, "up"},
		{"-n", e.NSISM, "link", "set", va, "up"},
		{"-n", e.NSISM, "route", "add", addr.String() + "/32", "dev", va, "src", ISMAddr.String()},
		{"-n", ns, "addr", "add", "203.0.113.1/32", "dev", "lo"},
		{"-n", ns, "addr", "add", "203.0.113.129/32", "dev", "lo"},
	}
	runIP(t, steps)
	return p
}

// StartCharon writes the configuration, starts charon in its namespace
// with a private /run, and loads the configuration with swanctl.
func (e *Env) StartCharon(c Conf) {
	e.t.Helper()
	e.ch = Start(e.t, e.NSSwan, e.Dir, c)
}

// Charon is the running charon, nil before StartCharon.
func (e *Env) Charon() *Charon { return e.ch }

// StopCharon stops charon by its pid.
func (e *Env) StopCharon() {
	if e.ch != nil {
		e.ch.Stop()
	}
}

// Kill stops charon with SIGKILL, by its pid, as a crash would: it sends
// nothing to its peers. StartCharon may start it again.
func (e *Env) Kill() {
	if e.ch != nil {
		e.ch.Kill()
	}
}

// SetLink takes charon's side of its veth link down or up: the peer
// becomes unreachable without knowing it.
func (e *Env) SetLink(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	links, err := vethLinks(e.NSSwan)
	for _, name := range links {
		if err := ip("-n", e.NSSwan, "link", "set", name, state); err != nil {
			return err
		}
	}
	return err
}

// SetMTU sets the MTU of the veth links of both namespaces: a path that
// carries no larger datagram.
func (e *Env) SetMTU(mtu int) error {
	for _, ns := range []string{e.NSISM, e.NSSwan} {
		links, err := vethLinks(ns)
		if err != nil {
			return err
		}
		for _, name := range links {
			if err := ip("-n", ns, "link", "set", "dev", name, "mtu", strconv.Itoa(mtu)); err != nil {
				return err
			}
		}
	}
	return nil
}

// vethLinks returns the names of a namespace's veth links.
func vethLinks(ns string) ([]string, error) {
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", "type", "veth").Output()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		names = append(names, name)
	}
	return names, nil
}

// errNotStarted: a call that needs charon before StartCharon.
var errNotStarted = errors.New("charon: not started")

// Swanctl runs swanctl against this charon.
func (e *Env) Swanctl(args ...string) (string, error) {
	if e.ch == nil {
		return "", errNotStarted
	}
	return e.ch.Swanctl(args...)
}

// Initiate asks charon to bring up a child SA of a connection.
func (e *Env) Initiate(child string, timeout time.Duration) (string, error) {
	if e.ch == nil {
		return "", errNotStarted
	}
	return e.ch.Initiate(child, timeout)
}

// Log returns charon's log.
func (e *Env) Log() string {
	if e.ch == nil {
		return ""
	}
	return e.ch.Log()
}

// runIP runs ip with each of steps' arguments, in order, and fails t at
// the first error.
func runIP(t TB, steps [][]string) {
	t.Helper()
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatalf("%v", err)
		}
	}
}

// ip runs the ip command.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("charon: ip %s: %w: %s", strings.Join(args, " "), err, out)
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
