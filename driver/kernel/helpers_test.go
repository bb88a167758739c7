package kernel

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// needRoot skips a test that needs root (network namespaces, XFRM).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and XFRM need CAP_SYS_ADMIN and CAP_NET_ADMIN")
	}
}

var nsCount atomic.Int32

// newNetNS creates a named network namespace, deleted when the test ends
// whatever its outcome.
func newNetNS(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("ismk-%d-%d", os.Getpid(), nsCount.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// run runs a command that must succeed and returns its output.
func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNS runs a command in a namespace and returns its output and error.
func inNS(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}
