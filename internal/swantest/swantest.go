// Package swantest runs a real strongSwan charon (5.9, with its userspace
// ESP, kernel-libipsec) as the IKE peer of tests: two network namespaces
// joined by a veth pair, ISM's daemon in one, charon in the other (started
// by package charon), with a private /run, its own strongswan.conf and vici
// socket in the test's temporary directory and a log at ike=4 chd=4 to
// read keys from.
// Everything it starts is stopped by pid, and the namespaces deleted, when
// the test ends, even on failure.
package swantest

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest/charon"
)

// Addresses on the veth link (RFC 5737 documentation range).
var (
	ISMAddr  = netip.MustParseAddr("192.0.2.1")
	SwanAddr = netip.MustParseAddr("192.0.2.2")
)

// Charon is the strongSwan daemon binary.
const Charon = charon.Binary

// Conf is charon's configuration for one test.
type Conf = charon.Conf

// Env is one test's pair of namespaces and charon.
type Env struct {
	t      testing.TB
	Dir    string
	NSISM  string // ISM's namespace
	NSSwan string // charon's namespace
	ch     *charon.Charon
}

// Skip skips the test unless it runs as root; as root, a missing
// strongSwan fails it (CI installs strongSwan: `make deps`).
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and strongSwan's charon (CI runs as root)")
	}
	if _, err := os.Stat(Charon); err != nil {
		t.Fatal("needs strongSwan's charon (apt-get install strongswan-charon strongswan-swanctl libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins)")
	}
}

// New creates the namespaces and the veth link; cleanup is registered.
func New(t testing.TB) *Env {
	t.Helper()
	Skip(t)
	nsA, nsB, va, vb := uniqueNames()
	e := &Env{t: t, Dir: t.TempDir(), NSISM: nsA, NSSwan: nsB}
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
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *Env) cleanup() {
	e.StopCharon()
	for _, ns := range []string{e.NSISM, e.NSSwan} {
		_ = ip("netns", "del", ns)
	}
}

// StartCharon writes the configuration, starts charon in its namespace
// with a private /run, and loads the configuration with swanctl.
func (e *Env) StartCharon(c Conf) {
	e.t.Helper()
	e.ch = charon.Start(e.t, e.NSSwan, e.Dir, c)
}

// StopCharon stops charon by its pid.
func (e *Env) StopCharon() {
	if e.ch != nil {
		e.ch.Stop()
	}
}

// Swanctl runs swanctl against this charon.
func (e *Env) Swanctl(args ...string) (string, error) {
	if e.ch == nil {
		return "", errors.New("swantest: charon not started")
	}
	return e.ch.Swanctl(args...)
}

// Initiate asks charon to bring up a child SA of a connection.
func (e *Env) Initiate(child string, timeout time.Duration) (string, error) {
	if e.ch == nil {
		return "", errors.New("swantest: charon not started")
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

// Dump writes charon's log to the test log when the test failed.
func (e *Env) Dump() {
	if e.t.Failed() {
		e.t.Logf("charon log:\n%s", e.Log())
	}
}
