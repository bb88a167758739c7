// Package swantest runs a real strongSwan charon (5.9, with its userspace
// ESP, kernel-libipsec) as the IKE peer of tests: two network namespaces
// joined by a veth pair, ISM's daemon in one, charon in the other, with a
// private /run, its own strongswan.conf and vici socket in the test's
// temporary directory and a log at ike=4 chd=4 to read keys from.
// Everything it starts is stopped by pid, and the namespaces deleted, when
// the test ends, even on failure.
package swantest

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Addresses on the veth link (RFC 5737 documentation range).
var (
	ISMAddr  = netip.MustParseAddr("192.0.2.1")
	SwanAddr = netip.MustParseAddr("192.0.2.2")
)

// Charon is the strongSwan daemon binary.
const Charon = "/usr/lib/ipsec/charon"

// plugins is the explicit plugin list: kdf is needed by 5.9.8, and
// kernel-libipsec must come before kernel-netlink.
const plugins = "random nonce kdf openssl aes sha1 sha2 md5 hmac gcm ctr ccm cmac xcbc gmp curve25519 pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici"

// Env is one test's pair of namespaces and charon.
type Env struct {
	t       testing.TB
	Dir     string
	NSISM   string // ISM's namespace
	NSSwan  string // charon's namespace
	cmd     *exec.Cmd
	vici    string
	logPath string
	swDir   string
}

// Skip skips the test unless it runs as root with strongSwan installed.
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and strongSwan's charon (CI runs as root)")
	}
	if _, err := os.Stat(Charon); err != nil {
		t.Skip("needs strongSwan's charon (apt-get install strongswan-charon strongswan-swanctl libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins)")
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

// Conf is charon's configuration for one test.
type Conf struct {
	// Swanctl is the body of swanctl.conf (connections and secrets).
	Swanctl string
	// AggressivePSK sets i_dont_care_about_security_and_use_aggressive_mode_psk.
	AggressivePSK bool
	// Files are placed under the swanctl directory (e.g. "x509ca/ca.pem").
	Files map[string][]byte
	// Charon is extra text inside the charon { } section.
	Charon string
	// InstallRoutes lets charon route the CHILD_SAs' traffic through its
	// userspace ESP device (ipsec0, table 220), for tests that send data.
	InstallRoutes bool
}

// StartCharon writes the configuration, starts charon in its namespace
// with a private /run, and loads the configuration with swanctl.
func (e *Env) StartCharon(c Conf) {
	e.t.Helper()
	run := filepath.Join(e.Dir, "run")
	sw := filepath.Join(e.Dir, "swanctl")
	for _, d := range []string{run, sw} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			e.t.Fatal(err)
		}
	}
	for _, sub := range []string{"x509", "x509ca", "private", "rsa", "pubkey"} {
		if err := os.MkdirAll(filepath.Join(sw, sub), 0o700); err != nil {
			e.t.Fatal(err)
		}
	}
	for name, data := range c.Files {
		if err := os.WriteFile(filepath.Join(sw, name), data, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	e.swDir = sw
	e.vici = "unix://" + filepath.Join(e.Dir, "charon.vici")
	e.logPath = filepath.Join(e.Dir, "charon.log")
	aggr := "no"
	if c.AggressivePSK {
		aggr = "yes"
	}
	routes := "no"
	if c.InstallRoutes {
		routes = "yes"
	}
	conf := fmt.Sprintf(`charon {
  load_modular = no
  load = %s
  port = 500
  port_nat_t = 4500
  install_routes = %s
  retransmit_tries = 3
  retransmit_timeout = 2.0
  retransmit_base = 1.4
  i_dont_care_about_security_and_use_aggressive_mode_psk = %s
  plugins {
    vici {
      socket = %s
    }
  }
  filelog {
    main {
      path = %s
      time_format = %%T
      append = no
      flush_line = yes
      default = 1
      cfg = 2
      ike = 4
      chd = 4
      knl = 2
      net = 2
      enc = 1
    }
  }
  %s
}
`, plugins, routes, aggr, e.vici, e.logPath, c.Charon)
	confPath := filepath.Join(e.Dir, "strongswan.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sw, "swanctl.conf"), []byte(c.Swanctl), 0o600); err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", e.NSSwan, "sh", "-c",
		`mount --bind "$1" /run && exec env STRONGSWAN_CONF="$2" "$3"`, "sh", run, confPath, Charon)
	cmd.Stdout, cmd.Stderr = nil, nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.cmd = cmd
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(strings.TrimPrefix(e.vici, "unix://")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("charon did not open its vici socket; log:\n%s", e.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := e.Swanctl("--load-all", "--file", filepath.Join(sw, "swanctl.conf")); err != nil {
		e.t.Fatalf("swanctl --load-all: %v\n%s", err, out)
	}
}

// StopCharon stops charon by its pid.
func (e *Env) StopCharon() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	pid := e.cmd.Process.Pid
	// ip netns exec execs sh, which execs charon: the pid is charon's.
	_ = syscall.Kill(pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
	}
	e.cmd = nil
}

// Swanctl runs swanctl against this charon.
func (e *Env) Swanctl(args ...string) (string, error) {
	cmd := exec.Command("swanctl", append(args, "--uri", e.vici)...)
	cmd.Env = append(os.Environ(), "SWANCTL_DIR="+e.swDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Initiate asks charon to bring up a child SA of a connection.
func (e *Env) Initiate(child string, timeout time.Duration) (string, error) {
	return e.Swanctl("--initiate", "--child", child, "--timeout", fmt.Sprint(int(timeout.Seconds())))
}

// Log returns charon's log.
func (e *Env) Log() string {
	b, _ := os.ReadFile(e.logPath)
	return string(b)
}

// Dump writes charon's log to the test log when the test failed.
func (e *Env) Dump() {
	if e.t.Failed() {
		e.t.Logf("charon log:\n%s", e.Log())
	}
}
