package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ismgw/ism/ism/operator"
)

// ismd processes for the benchmarks of issue 11 (cluster, restart): the
// daemon as an operator runs it, in a namespace, killed with SIGKILL by
// pid and started again, asked over its control socket.

// ISMD is the ismd binary the cluster and restart benchmarks run: beside
// ismbench, else on PATH; cmd/ismbench sets it from -ismd.
var ISMD string

// ismdPath returns the ismd binary to run.
func ismdPath(h *harness) string {
	if ISMD != "" {
		return ISMD
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "ismd"); fileExists(p) {
			return p
		}
	}
	p, err := exec.LookPath("ismd")
	if err != nil {
		h.Fatalf("bench: no ismd binary beside ismbench or on PATH (go build ./cmd/ismd, or -ismd FILE)")
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// ismdProc is one ismd in a namespace. Its methods are safe for concurrent
// use.
type ismdProc struct {
	h                   *harness
	bin, ns, conf, sock string
	logPath             string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// newISMD writes conf (with its control socket) into dir as name.conf.
func newISMD(h *harness, ns, dir, name, conf string) *ismdProc {
	d := &ismdProc{h: h, bin: ismdPath(h), ns: ns, conf: filepath.Join(dir, name+".conf"),
		sock: filepath.Join(dir, name+".sock"), logPath: filepath.Join(dir, name+".log")}
	if err := os.WriteFile(d.conf, []byte("control socket "+d.sock+"\n"+conf), 0o600); err != nil {
		h.Fatalf("bench: %v", err)
	}
	h.Cleanup(d.kill)
	return d
}

// start starts ismd and returns when it did, at once: the caller waits for
// what it needs (traffic, ownership).
func (d *ismdProc) start() time.Time {
	log, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.h.Fatalf("bench: %v", err)
	}
	defer log.Close()
	cmd := exec.Command("ip", "netns", "exec", d.ns, d.bin, "-config", d.conf)
	cmd.Stdout, cmd.Stderr = log, log
	at := time.Now()
	if err := cmd.Start(); err != nil {
		d.h.Fatalf("bench: start ismd: %v", err)
	}
	d.mu.Lock()
	d.cmd = cmd
	d.mu.Unlock()
	return at
}

// kill sends SIGKILL by pid, as a crash would, and reaps the process.
func (d *ismdProc) kill() {
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

// call runs an ismctl command and decodes its data into v.
func (d *ismdProc) call(cmd string, v any) error {
	resp, err := operator.Call(d.sock, cmd)
	if err != nil {
		return err
	}
	if resp.Error != "" {
		return fmt.Errorf("%s: %s", cmd, resp.Error)
	}
	return json.Unmarshal(resp.Data, v)
}

// mustCall is call that ends the run on an error.
func (d *ismdProc) mustCall(cmd string, v any) {
	if err := d.call(cmd, v); err != nil {
		d.h.Fatalf("bench: ismd %s: %v\n%s", filepath.Base(d.conf), err, d.logTail())
	}
}

// waitFor polls cond until it holds, or ends the run.
func (d *ismdProc) waitFor(within time.Duration, what string, cond func() bool) {
	for end := time.Now().Add(within); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			d.h.Fatalf("bench: %s: not within %v\n%s", what, within, d.logTail())
		}
	}
}

func (d *ismdProc) logTail() string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}

	return fmt.Sprintf("ismd %s log (tail):\n%s", filepath.Base(d.conf), b)
}

// peerCounters is what the benchmarks read of a peer gateway: its IKE SAs
// set up (both versions) and its tunnels' replay drops.
type peerCounters struct {
	ikeSAs, replayDrops uint64
}

func (d *ismdProc) peerCounters() peerCounters {
	var st operator.Statistics
	d.mustCall("show ipsec statistics", &st)
	var ts []operator.TunnelStatus
	d.mustCall("show ipsec tunnel detail", &ts)
	var c peerCounters
	if st.IKE != nil {
		c.ikeSAs = st.IKE.Phase1Established
	}
	for _, t := range ts {
		c.replayDrops += t.Inbound.Drops["replay"]
	}
	return c
}

// peerTunnels is the tunnels between the benchmarks' gateway (gw: source
// src, addresses .9, .13, .17 of 198.51.100.8/29 and .16/30) and its peer
// B (the other ends, probing from .65 to .67): m1 manual, s1 signaled
// with IKEv1, s2 with IKEv2. peer is the far end's address.
func peerTunnels(gw bool, src, peer string) string {
	var s strings.Builder
	s.WriteString("ipsec isakmp-policy-rule 10\n  encryption aes128\n  hash sha\n  group 14\n  authentication pre-shared-key\n")
	s.WriteString("ipsec transform-set gcm\n  transform 1 esp-aes128-gcm16\n")
	fmt.Fprintf(&s, "ipsec pre-shared-key address %s ascii \"ismbench\"\n", peer)
	end, in, out := 1, "0x2001", "0x1001" // the host part of each /30: .9, .13, .17 on the gateway
	if !gw {
		end, in, out = 2, out, in
	}
	fmt.Fprintf(&s, "interface tunnel ipsec:m1\n  ip address 198.51.100.%d 255.255.255.252\n  tunnel source %s\n  tunnel destination %s\n"+
		"  tunnel transform-set gcm\n  tunnel sa inbound esp spi %s cipher-key %s\n  tunnel sa outbound esp spi %s cipher-key %s\n",
		8+end, src, peer, in, benchKey(in), out, benchKey(out))
	for i, name := range []string{"s1", "s2"} {
		net, host := fmt.Sprintf("198.51.100.%d/30", 12+4*i), fmt.Sprintf("198.51.100.%d/32", 66+i)
		local, remote := net, host
		if !gw {
			local, remote = host, net
		}
		fmt.Fprintf(&s, "interface tunnel ipsec:%s\n  ip address 198.51.100.%d 255.255.255.252\n  tunnel type signaled\n"+
			"  tunnel ike-version %d\n  tunnel source %s\n  tunnel destination %s\n  tunnel transform-set gcm\n"+
			"  tunnel local-selector %s\n  tunnel remote-selector %s\n", name, 12+4*i+end, i+1, src, peer, local, remote)
	}
	if gw {
		for i, name := range []string{"m1", "s1", "s2"} {
			fmt.Fprintf(&s, "ip route 198.51.100.%d/32 ipsec:%s\n", 65+i, name)
		}
	}
	return s.String()
}

// benchKey is a manual SA's key, by its SPI: AES-128-GCM's 20 octets.
func benchKey(spi string) string { return strings.Repeat(spi[2:], 10) }

// benchProbes are the peer's probe sources and the gateway's tunnel
// addresses they go to: m1, s1 and s2.
var benchProbes = [][2]string{{"198.51.100.65", "198.51.100.9"}, {"198.51.100.66", "198.51.100.13"}, {"198.51.100.67", "198.51.100.17"}}
