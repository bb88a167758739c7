// Package swantest runs a real strongSwan charon (5.9, with its userspace
// ESP, kernel-libipsec) as the IKE peer of tests: two network namespaces
// joined by a veth pair, ISM's daemon in one, charon in the other (package
// charon's Env, which benchmarks use without package testing), with a
// private /run, its own strongswan.conf and vici socket in the test's
// temporary directory and a log at ike=4 chd=4 to read keys from. This
// package adds what tests need on top: skipping when not root, temporary
// directories, the log on failure, charon's SAs and logged keys, test
// certificates.
// Everything it starts is stopped by pid, and the namespaces deleted, when
// the test ends, even on failure.
package swantest

import (
	"net/netip"
	"os"
	"testing"

	"github.com/ismgw/ism/internal/swantest/charon"
)

// Addresses on the veth link (RFC 5737 documentation range).
var (
	ISMAddr  = charon.ISMAddr
	SwanAddr = charon.SwanAddr
)

// Charon is the strongSwan daemon binary.
const Charon = charon.Binary

// Conf is charon's configuration for one test.
type Conf = charon.Conf

// Env is one test's pair of namespaces and charon (charon.Env), reporting
// to the test. Its zero value is not usable: call New. Its methods are for
// one goroutine.
type Env struct {
	*charon.Env
	t testing.TB
}

// Skip skips the test unless it runs as root; as root, a missing
// strongSwan fails it (CI installs strongSwan: `make deps`).
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and strongSwan's charon (CI runs as root)")
	}
	if err := charon.Available(); err != nil {
		t.Fatal(err)
	}
}

// New creates the namespaces and the veth link; cleanup is registered.
func New(t testing.TB) *Env {
	t.Helper()
	Skip(t)
	return &Env{Env: charon.NewEnv(t, t.TempDir()), t: t}
}

// AddPeer adds a second charon namespace (charon.Env.AddPeer) whose files
// are in a temporary directory of t.
func (e *Env) AddPeer(t testing.TB, addr netip.Addr) *Env {
	t.Helper()
	return &Env{Env: e.Env.AddPeer(t, t.TempDir(), addr), t: t}
}

// Dump writes charon's log to the test log when the test failed.
func (e *Env) Dump() {
	if e.t.Failed() {
		e.t.Logf("charon log:\n%s", e.Log())
	}
}
