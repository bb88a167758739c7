package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ismgw/ism/ism/operator"
)

// What the daemon-level tests of issue 11 share: ismd processes run as a
// user runs them (restarted, killed by pid), ismctl against them, and
// continuous pings whose replies say when traffic flowed.

// daemon is one ismd process in a namespace.
type daemon struct {
	t        *testing.T
	bin, ctl string
	ns       string
	conf     string // the configuration file
	sock     string // its control socket
	logPath  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// newDaemon writes conf into dir as name.conf; start runs it.
func newDaemon(t *testing.T, bin, ctl, ns, dir, name, conf string) *daemon {
	t.Helper()
	d := &daemon{t: t, bin: bin, ctl: ctl, ns: ns, conf: filepath.Join(dir, name+".conf"),
		sock: filepath.Join(dir, name+".sock"), logPath: filepath.Join(dir, name+".log")}
	if err := os.WriteFile(d.conf, []byte("control socket "+d.sock+"\n"+conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.kill)
	return d
}

// start starts ismd and waits until its control socket answers.
func (d *daemon) start() time.Time {
	d.t.Helper()
	log, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", d.ns, d.bin, "-config", d.conf, "-log-level", "debug")
	cmd.Stdout, cmd.Stderr = log, log
	at := time.Now()
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	log.Close()
	d.mu.Lock()
	d.cmd = cmd
	d.mu.Unlock()
	d.waitFor(20*time.Second, "the control socket", func() bool {
		_, err := d.show("show", "ipsec", "statistics")
		return err == nil
	})
	return at
}

// kill sends SIGKILL by pid, as a crash would, and reaps the process.
func (d *daemon) kill() {
	d.mu.Lock()
	cmd := d.cmd
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
}

// term sends SIGTERM by pid, as an operator's stop would, and waits for
// the process to exit.
func (d *daemon) term() {
	d.mu.Lock()
	cmd := d.cmd
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	_ = cmd.Wait()
}

// show runs ismctl against the daemon.
func (d *daemon) show(args ...string) (string, error) {
	out, err := exec.Command(d.ctl, append([]string{"-socket", d.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// mustShow is show that fails the test on an error.
func (d *daemon) mustShow(args ...string) string {
	d.t.Helper()
	out, err := d.show(args...)
	if err != nil {
		d.t.Fatalf("ismctl %s: %v\n%s\n%s", strings.Join(args, " "), err, out, d.logTail())
	}
	return out
}

// tunnels returns `show ipsec tunnel detail` as data.
func (d *daemon) tunnels() map[string]operator.TunnelStatus {
	d.t.Helper()
	var ts []operator.TunnelStatus
	if err := json.Unmarshal([]byte(d.mustShow("-json", "show", "ipsec", "tunnel", "detail")), &ts); err != nil {
		d.t.Fatal(err)
	}
	out := map[string]operator.TunnelStatus{}
	for _, s := range ts {
		out[strings.TrimPrefix(s.Name, "ipsec:")] = s
	}
	return out
}

// replayDrops returns a tunnel's inbound replay drops.
func (d *daemon) replayDrops(tunnel string) uint64 {
	d.t.Helper()
	return d.tunnels()[tunnel].Inbound.Drops["replay"]
}

// waitFor polls cond every 50 ms until it holds or within passes.
func (d *daemon) waitFor(within time.Duration, what string, cond func() bool) {
	d.t.Helper()
	for end := time.Now().Add(within); !cond(); {
		if time.Now().After(end) {
			d.t.Fatalf("%s: not within %v\n%s", what, within, d.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTail returns the end of the daemon's log.
func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return fmt.Sprintf("ismd %s log (tail):\n%s", filepath.Base(d.conf), b)
}

// pinger is a continuous ping (ping -D: each reply with its time).
type pinger struct {
	cmd *exec.Cmd

	mu      sync.Mutex
	replies []time.Time
	sent    int
}

var replyRE = regexp.MustCompile(`^\[(\d+)\.(\d+)\] \d+ bytes from .* icmp_seq=(\d+)`)

// startPing pings dst from src in ns every interval until the test ends.
func startPing(t *testing.T, ns, src, dst string, interval time.Duration) *pinger {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "ping", "-D", "-n", "-i", fmt.Sprintf("%.3f", interval.Seconds()), "-W", "1", "-I", src, dst)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pinger{cmd: cmd}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m := replyRE.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			sec, _ := strconv.ParseInt(m[1], 10, 64)
			us, _ := strconv.ParseInt((m[2] + "000000")[:6], 10, 64)
			seq, _ := strconv.Atoi(m[3])
			p.mu.Lock()
			p.replies = append(p.replies, time.Unix(sec, us*1000))
			p.sent = max(p.sent, seq)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *pinger) stop() {
	if p.cmd.Process != nil {
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

// firstAfter returns the first reply received after at, or false.
func (p *pinger) firstAfter(at time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.replies {
		if r.After(at) {
			return r, true
		}
	}
	return time.Time{}, false
}

// count returns the replies so far.
func (p *pinger) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.replies)
}

// command runs a command and returns its output.
func command(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// lost returns the pings unanswered up to the last one answered.
func (p *pinger) lost() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent - len(p.replies)
}
