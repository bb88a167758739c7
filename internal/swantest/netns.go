package swantest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"

	"github.com/ismgw/ism/netns"
)

// ip runs the ip command.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("swantest: ip %s: %v: %s", strings.Join(args, " "), err, out)
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

// InNamespace runs f on an OS thread that has entered the named network
// namespace, then returns the thread to the original one. Sockets f opens
// stay in the namespace.
func InNamespace(ns string, f func() error) error { return netns.Do(ns, f) }
