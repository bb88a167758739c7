package kernel

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/transform"
)

// TestProbeAFALG checks the AF_ALG half of the report against observations
// made without the probe's code: a bare socket(AF_ALG), and Python's own
// AF_ALG binding for each algorithm.
func TestProbeAFALG(t *testing.T) {
	r := Probe()
	t.Logf("probe report:\n%s", r)
	if len(r.Algorithms) != len(afalgAlgorithms) {
		t.Fatalf("report lists %d algorithms, want %d", len(r.Algorithms), len(afalgAlgorithms))
	}
	fd, err := unix.Socket(unix.AF_ALG, unix.SOCK_SEQPACKET, 0)
	if err != nil {
		if r.AFALG.Present {
			t.Fatalf("probe says AF_ALG is present, but socket(AF_ALG) fails with %v", err)
		}
		name := unix.ErrnoName(errnoOf(err))
		if !strings.Contains(r.AFALG.Reason, "kernel has no AF_ALG") || !strings.Contains(r.AFALG.Reason, name) ||
			!strings.Contains(r.AFALG.Reason, "CONFIG_CRYPTO_USER_API") {
			t.Errorf("reason %q does not say that socket(AF_ALG) fails with %s and which option is missing", r.AFALG.Reason, name)
		}
		for _, a := range r.Algorithms {
			if a.Present {
				t.Errorf("%s reported present without AF_ALG", a.Name)
			}
		}
		return
	}
	unix.Close(fd)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("AF_ALG sockets open; python3, the independent judge of each algorithm, is missing: %v", err)
	}
	// Python binds each algorithm with its own AF_ALG support and prints
	// "ok" or the errno.
	script := `
import socket, sys
for line in sys.stdin:
    typ, name = line.split()
    s = socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET, 0)
    try:
        s.bind((typ, name)); print("ok")
    except OSError as e:
        print("err", e.errno)
    s.close()
`
	var in strings.Builder
	for _, a := range afalgAlgorithms {
		in.WriteString(a.typ + " " + a.name + "\n")
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(r.Algorithms) {
		t.Fatalf("python3 answered %d lines for %d algorithms: %q", len(lines), len(r.Algorithms), out)
	}
	bound := false
	for i, a := range r.Algorithms {
		pyOK := lines[i] == "ok"
		bound = bound || pyOK
		if a.Present != pyOK {
			t.Errorf("%s %s: probe says present=%v (%s), python3 says %s", a.Type, a.Name, a.Present, a.Reason, lines[i])
		}
	}
	if r.AFALG.Present != bound {
		t.Errorf("AF_ALG present=%v, but python3 could bind some algorithm: %v", r.AFALG.Present, bound)
	}
}

// TestProbeXFRM checks the XFRM half of the report against iproute2
// adding the same kind of SA in a namespace of the test's own.
func TestProbeXFRM(t *testing.T) {
	needRoot(t)
	r := Probe()
	t.Logf("probe report:\n%s", r)
	ns := newNetNS(t)
	if _, err := inNS(ns, "ip", "xfrm", "state", "list"); err != nil {
		t.Fatalf("iproute2 cannot list XFRM states: %v", err)
	}
	if !r.XFRM.Present {
		t.Fatalf("probe says XFRM netlink is absent (%s), but iproute2 lists states", r.XFRM.Reason)
	}
	cases := []struct {
		p     transform.Protocol
		st    Status
		t     string
		ipArg []string
	}{
		{transform.ESP, r.ESP, "esp-aes128-hmac-sha", []string{"proto", "esp", "spi", "0x100", "mode", "tunnel",
			"enc", "cbc(aes)", "0x000102030405060708090a0b0c0d0e0f",
			"auth-trunc", "hmac(sha1)", "0x000102030405060708090a0b0c0d0e0f10111213", "96"}},
		{transform.AH, r.AH, "ah-hmac-sha", []string{"proto", "ah", "spi", "0x101", "mode", "tunnel",
			"auth-trunc", "hmac(sha1)", "0x000102030405060708090a0b0c0d0e0f10111213", "96"}},
	}
	for _, c := range cases {
		args := append([]string{"ip", "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2"}, c.ipArg...)
		out, err := inNS(ns, args...)
		tr, _ := transform.Lookup(c.t)
		switch {
		case err == nil:
			if !c.st.Present || !slices.Contains(r.XFRMTransforms, tr) {
				t.Errorf("%s: iproute2 installs an %s SA, but the probe says %s (transforms %v)", c.p, c.t, c.st, r.XFRMTransforms)
			}
		case strings.Contains(out, "Requested type not found") || strings.Contains(out, "Protocol not supported"):
			up := strings.ToUpper(c.p.String())
			if c.st.Present || !strings.Contains(c.st.Reason, "EPROTONOSUPPORT") || !strings.Contains(c.st.Reason, "CONFIG_INET_"+up) ||
				!strings.Contains(c.st.Reason, "kernel XFRM has no "+up) {
				t.Errorf("%s: iproute2 says the kernel has no %s (%q), but the probe says %s", c.p, up, strings.TrimSpace(out), c.st)
			}
			if slices.ContainsFunc(r.XFRMTransforms, func(x transform.Transform) bool { return x.Protocol == c.p }) {
				t.Errorf("%s: transforms listed without the protocol: %v", c.p, r.XFRMTransforms)
			}
		default:
			t.Fatalf("%s: iproute2 fails for another reason, so it cannot judge the probe: %v: %s", c.p, err, out)
		}
	}
}

// TestRegistry checks that the registered driver opens exactly when the
// probe finds AF_ALG, and otherwise says why with driver.ErrUnavailable.
func TestRegistry(t *testing.T) {
	if !slices.Contains(driver.Names(), Name) {
		t.Fatalf("%q not registered: %v", Name, driver.Names())
	}
	st, _ := probeAFALG()
	d, err := driver.Open(Name, driver.Config{Workers: 1})
	if !st.Present {
		if !errors.Is(err, driver.ErrUnavailable) || !strings.Contains(err.Error(), st.Reason) {
			t.Fatalf("open without AF_ALG: got %v, want ErrUnavailable with %q", err, st.Reason)
		}
		t.Logf("driver.Open: %v", err)
		return
	}
	if err != nil {
		t.Fatalf("AF_ALG present, open fails: %v", err)
	}
	defer d.Close()
	if len(d.Info().Capabilities) == 0 {
		t.Fatal("AF_ALG present but no transform supported")
	}
}
