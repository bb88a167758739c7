package swantest

import (
	"os/exec"
	"strconv"
	"strings"
)

// SetMTU sets the MTU of the veth link between ISM's namespace and
// charon's, on both ends: a path that carries no larger datagram.
func (e *Env) SetMTU(mtu int) error {
	for _, ns := range []string{e.NSISM, e.NSSwan} {
		out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", "type", "veth").Output()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if err := ip("-n", ns, "link", "set", "dev", name, "mtu", strconv.Itoa(mtu)); err != nil {
				return err
			}
		}
	}
	return nil
}
