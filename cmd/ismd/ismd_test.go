package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/netlab"
)

// build compiles ismd and ismctl into dir.
func build(t *testing.T) (ismd, ismctl string) {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/ismgw/ism/cmd/ismd", "github.com/ismgw/ism/cmd/ismctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "ismd"), filepath.Join(dir, "ismctl")
}

// TestCheckPrintsEveryError: ismd -check on a bad file prints each error as
// FILE:LINE: message and exits 1.
func TestCheckPrintsEveryError(t *testing.T) {
	ismd, _ := build(t)
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte(`ipsec transform-set ts
  transform 1 esp-3des-hmac-bogus
interface tunnel ipsec:t1
  tunnel source 192.0.2.300
  tunnel frobnicate
`), 0o600)
	out, err := exec.Command(ismd, "-check", "-config", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	for _, line := range []string{bad + ":2: ", bad + ":4: ", bad + ":5: "} {
		if !strings.Contains(string(out), line) {
			t.Errorf("output lacks an error at %q:\n%s", line, out)
		}
	}
}

// TestDaemon runs two ismd in two namespaces: a tunnel comes up, ismctl shows
// it, a third daemon on a's state directory is refused, SIGHUP applies an
// edited file, `ismctl reload` refuses a broken one and the daemon keeps
// running, and SIGTERM stops it cleanly.
func TestDaemon(t *testing.T) {
	ismd, ismctl := build(t)
	l := netlab.New(t)
	a, b := l.NS("a"), l.NS("b")
	l.Link(a, "eth0", netip.MustParsePrefix("192.0.2.1/24"), b, "eth0", netip.MustParsePrefix("192.0.2.2/24"))
	l.MustRun(b, "ip", "addr", "add", "203.0.113.1/32", "dev", "lo")
	dir := t.TempDir()
	k1, k2 := strings.Repeat("a1", 20), strings.Repeat("b2", 20)
	conf := func(side, src, dst, addr, spiIn, keyIn, spiOut, keyOut, extra string) string {
		// Each daemon has a state directory of its own in the test's
		// directory, never the machine's (/var/lib/ism, /etc/ism): a
		// state file left by an earlier run would resume its SAs.
		return fmt.Sprintf(`control socket %[1]s/%[2]s.sock
checkpoint state-directory %[1]s/state-%[2]s
checkpoint key-file %[1]s/state.key
ipsec transform-set ts
  transform 1 esp-aes128-gcm16
interface tunnel ipsec:t1
  ip address %[3]s 255.255.255.252
  tunnel source %[4]s
  tunnel destination %[5]s
  tunnel transform-set ts
  tunnel sa inbound esp spi 0x%[6]s cipher-key %[7]s
  tunnel sa outbound esp spi 0x%[8]s cipher-key %[9]s
%[10]s`, dir, side, addr, src, dst, spiIn, keyIn, spiOut, keyOut, extra)
	}
	confA := conf("a", "192.0.2.1", "192.0.2.2", "198.51.100.1", "2001", k2, "1001", k1, "ip route 203.0.113.0 255.255.255.0 ipsec:t1\n")
	confB := conf("b", "192.0.2.2", "192.0.2.1", "198.51.100.2", "1001", k1, "2001", k2, "")
	files := map[string]string{"a": filepath.Join(dir, "a.conf"), "b": filepath.Join(dir, "b.conf")}
	if err := os.WriteFile(filepath.Join(dir, "state.key"), []byte(strings.Repeat("3c", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(files["a"], []byte(confA), 0o600)
	os.WriteFile(files["b"], []byte(confB), 0o600)
	procs := map[string]*exec.Cmd{}
	for side, ns := range map[string]string{"a": a, "b": b} {
		cmd := l.Command(ns, ismd, "-config", files[side])
		logf, _ := os.Create(filepath.Join(dir, side+".log"))
		cmd.Stderr = logf
		l.Start(cmd)
		procs[side] = cmd
	}
	ctl := func(side string, args ...string) (string, error) {
		out, err := exec.Command(ismctl, append([]string{"-socket", filepath.Join(dir, side+".sock")}, args...)...).CombinedOutput()
		return string(out), err
	}
	for _, side := range []string{"a", "b"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if out, err := ctl(side, "show", "ipsec", "tunnel"); err == nil && strings.Contains(out, " up ") {
				break
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(dir, side+".log"))
				t.Fatalf("ismd %s did not bring the tunnel up:\n%s", side, log)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	l.MustRun(a, "ping", "-c", "2", "-i", "0.2", "-W", "10", "-I", "198.51.100.1", "203.0.113.1")

	// A second daemon given a's state directory is refused at its line,
	// naming the holder: it would resume and overwrite a's checkpoints.
	second := filepath.Join(dir, "second.conf")
	os.WriteFile(second, []byte(fmt.Sprintf("control socket %[1]s/second.sock\ncheckpoint state-directory %[1]s/state-a\ncheckpoint key-file %[1]s/state.key\n", dir)), 0o600)
	refused, err := exec.Command("timeout", "10", "ip", "netns", "exec", b, ismd, "-config", second).CombinedOutput()
	want := fmt.Sprintf("%s:2: checkpoint: state directory in use by another daemon: %s/state-a is locked by pid %d", second, dir, procs["a"].Process.Pid)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(refused), want) {
		t.Errorf("a second ismd on a's state directory: %v\n%s\nwant %q", err, refused, want)
	}
	out, err := ctl("a", "-json", "show", "ipsec", "tunnel", "detail")
	if err != nil || !strings.Contains(out, `"packets": 2`) || strings.Contains(out, k1) || strings.Contains(out, k2) {
		t.Fatalf("show -json: %v\n%s", err, out)
	}

	// SIGHUP after adding a route: the daemon applies it, the tunnel keeps its SAs.
	os.WriteFile(files["a"], []byte(confA+"ip route 203.0.113.128 255.255.255.128 ipsec:t1\n"), 0o600)
	procs["a"].Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for {
		routes := l.MustRun(a, "ip", "route", "show", "203.0.113.128/25")
		if strings.Contains(routes, "dev ism") { // ism0, or ismxN on XFRM
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not install the new route")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, _ := ctl("a", "show", "ipsec", "sa"); !strings.Contains(out, "2 packets") {
		t.Errorf("SAs rebuilt by a reload that did not touch the tunnel:\n%s", out)
	}

	// A broken file is refused with its line; the daemon keeps running.
	os.WriteFile(files["a"], []byte(confA+"ip route 203.0.113.0 255.255.255.0 ipsec:nosuch\n"), 0o600)
	out, err = ctl("a", "reload")
	if err == nil || !strings.Contains(out, files["a"]+":") {
		t.Errorf("reload of a broken file: %v\n%s", err, out)
	}
	l.MustRun(a, "ping", "-c", "1", "-W", "10", "-I", "198.51.100.1", "203.0.113.1")

	procs["a"].Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- procs["a"].Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ismd exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ismd did not stop on SIGTERM")
	}
	if links := l.MustRun(a, "ip", "link", "show"); strings.Contains(links, ": ism") {
		t.Errorf("a secure-interface device left behind after ismd stopped:\n%s", links)
	}
}
