package swantest

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// AddPeer adds a second charon namespace to an Env: a namespace of its
// own, joined to ISM's namespace by a veth pair of its own, with addr
// (another address of 192.0.2.0/24, e.g. 192.0.2.3) on charon's side.
// ISM's side of the link has no address: a host route sends addr's
// traffic from ISMAddr over it. The returned Env shares NSISM with e; it
// starts, kills and stops its charon like e does, and its namespace is
// deleted when the test ends (before e's, which holds ISM's).
func (e *Env) AddPeer(t testing.TB, addr netip.Addr) *Env {
	t.Helper()
	_, ns, va, vb := uniqueNames()
	p := &Env{t: t, Dir: t.TempDir(), NSISM: e.NSISM, NSSwan: ns}
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
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatal(err)
		}
	}
	return p
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
	out, err := exec.Command("ip", "-n", e.NSSwan, "-o", "link", "show", "type", "veth").Output()
	if err != nil {
		return err
	}
	state := "down"
	if up {
		state = "up"
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if err := ip("-n", e.NSSwan, "link", "set", name, state); err != nil {
			return err
		}
	}
	return nil
}
