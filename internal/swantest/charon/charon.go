// Package charon runs strongSwan's IKE daemon, charon 5.9 with its
// userspace ESP (kernel-libipsec), in a network namespace, for tests and
// benchmarks: a private /run (charon's pid file is compiled in), its own
// strongswan.conf, swanctl.conf and vici socket in a directory the caller
// owns, and a log file. It talks to charon with swanctl and over vici
// (vici.go), renders swanctl.conf from types (swanctl.go), and sets up the
// namespaces of ISM and charon joined by a veth link (env.go). It does not
// import package testing: it reports to a TB, which a *testing.T or a
// benchmark harness satisfies. Everything it starts is stopped by pid.
package charon

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Binary is the strongSwan daemon.
const Binary = "/usr/lib/ipsec/charon"

// plugins is the explicit plugin list: kdf is needed by 5.9.8, and
// kernel-libipsec must come before kernel-netlink.
const plugins = "random nonce kdf openssl aes sha1 sha2 md5 hmac gcm ctr ccm cmac xcbc gmp curve25519 pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici"

// TB is what a Charon reports to: a *testing.T, or a benchmark harness
// with the same methods. Fatalf must not return.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Conf is one charon's configuration.
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
	// userspace ESP device (ipsec0, table 220), for runs that send data.
	InstallRoutes bool
	// Quiet logs at level 0 only (no keys, no message dumps), for
	// benchmarks: the default, ike=4 chd=4, logs every key for tests to
	// read and slows charon down.
	Quiet bool
}

// Charon is one running charon. Its methods are safe for concurrent use
// once Start has returned, except Stop.
type Charon struct {
	NS  string // the network namespace it runs in
	Dir string // its files: strongswan.conf, swanctl/, run/, the log

	cmd     *exec.Cmd
	vici    string // the vici socket's path
	logPath string
	swDir   string
}

// Start writes the configuration into dir, starts charon in namespace ns
// with a private /run, and loads the configuration with swanctl. Stop is
// registered as a cleanup of t.
func Start(t TB, ns, dir string, c Conf) *Charon {
	t.Helper()
	ch := &Charon{NS: ns, Dir: dir, swDir: filepath.Join(dir, "swanctl"),
		vici: filepath.Join(dir, "charon.vici"), logPath: filepath.Join(dir, "charon.log")}
	run := filepath.Join(dir, "run")
	for _, d := range []string{run, ch.swDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("charon: %v", err)
		}
	}
	for _, sub := range []string{"x509", "x509ca", "private", "rsa", "pubkey"} {
		if err := os.MkdirAll(filepath.Join(ch.swDir, sub), 0o700); err != nil {
			t.Fatalf("charon: %v", err)
		}
	}
	for name, data := range c.Files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(ch.swDir, name)), 0o700); err != nil {
			t.Fatalf("charon: %v", err)
		}
		if err := os.WriteFile(filepath.Join(ch.swDir, name), data, 0o600); err != nil {
			t.Fatalf("charon: %v", err)
		}
	}
	confPath := filepath.Join(dir, "strongswan.conf")
	if err := os.WriteFile(confPath, []byte(c.strongswanConf(ch.vici, ch.logPath)), 0o600); err != nil {
		t.Fatalf("charon: %v", err)
	}
	if err := os.WriteFile(filepath.Join(ch.swDir, "swanctl.conf"), []byte(c.Swanctl), 0o600); err != nil {
		t.Fatalf("charon: %v", err)
	}
	// A socket left by a charon killed in this directory would pass for
	// the new one's before it listens.
	_ = os.Remove(ch.vici)
	cmd := exec.Command("ip", "netns", "exec", ns, "sh", "-c",
		`mount --bind "$1" /run && exec env STRONGSWAN_CONF="$2" "$3"`, "sh", run, confPath, Binary)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("charon: %v", err)
	}
	ch.cmd = cmd
	t.Cleanup(ch.Stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(ch.vici); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon did not open its vici socket; log:\n%s", ch.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := ch.Swanctl("--load-all", "--file", filepath.Join(ch.swDir, "swanctl.conf")); err != nil {
		t.Fatalf("swanctl --load-all: %v\n%s", err, out)
	}
	return ch
}

func (c Conf) strongswanConf(vici, logPath string) string {
	yes := map[bool]string{false: "no", true: "yes"}
	levels := "default = 1\n      cfg = 2\n      ike = 4\n      chd = 4\n      knl = 2\n      net = 2\n      enc = 1"
	if c.Quiet {
		levels = "default = 0"
	}
	return fmt.Sprintf(`charon {
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
      socket = unix://%s
    }
  }
  filelog {
    main {
      path = %s
      time_format = %%T
      append = no
      flush_line = yes
      %s
    }
  }
  %s
}
`, plugins, yes[c.InstallRoutes], yes[c.AggressivePSK], vici, logPath, levels, c.Charon)
}

// Stop stops charon by its pid: SIGTERM, then SIGKILL after 5 seconds.
// It may be called more than once.
func (ch *Charon) Stop() {
	if ch.cmd == nil || ch.cmd.Process == nil {
		return
	}
	pid := ch.cmd.Process.Pid
	// ip netns exec execs sh, which execs charon: the pid is charon's.
	_ = syscall.Kill(pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = ch.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
	}
	ch.cmd = nil
}

// Kill stops charon with SIGKILL, by its pid, as a crash would: it sends
// nothing to its peers. It removes what the crash leaves behind (the pid
// file, the vici socket), so that Start may run again in the same
// directory.
func (ch *Charon) Kill() {
	if ch.cmd == nil || ch.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(ch.cmd.Process.Pid, syscall.SIGKILL)
	_ = ch.cmd.Wait()
	ch.cmd = nil
	_ = os.Remove(ch.vici)
	_ = os.Remove(filepath.Join(ch.Dir, "run", "charon.pid"))
}

// Pid is charon's process id, 0 once stopped.
func (ch *Charon) Pid() int {
	if ch.cmd == nil || ch.cmd.Process == nil {
		return 0
	}
	return ch.cmd.Process.Pid
}

// ViciSocket is the path of charon's vici socket.
func (ch *Charon) ViciSocket() string { return ch.vici }

// Swanctl runs swanctl against this charon and returns its output.
func (ch *Charon) Swanctl(args ...string) (string, error) {
	cmd := exec.Command("swanctl", append(args, "--uri", "unix://"+ch.vici)...)
	cmd.Env = append(os.Environ(), "SWANCTL_DIR="+ch.swDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Initiate asks charon to bring up a child SA of a connection and waits
// for the result, at most timeout.
func (ch *Charon) Initiate(child string, timeout time.Duration) (string, error) {
	return ch.Swanctl("--initiate", "--child", child, "--timeout", fmt.Sprint(int(timeout.Seconds())))
}

// Log returns charon's log.
func (ch *Charon) Log() string {
	b, _ := os.ReadFile(ch.logPath)
	return string(b)
}

// LogTail returns the last n lines of charon's log, for error messages.
func (ch *Charon) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(ch.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
