package ism

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/ism/datapath"
)

// TestSwanRekeyLifetime: user SAs with a 24 s lifetime rekey under a
// continuous ping (one echo every 0.2 s) without losing a packet or the
// tunnel going down: each new SA is installed before the old one goes.
//
// The configuration's shortest lifetime is 60 s, so the 24 s comes from
// charon (child life_time 24 s, rekey_time 22 s): when charon starts a
// quick mode ISM takes the lesser of the proposed lifetime and its own, and
// rekeys that SA at 80 to 90 % of it, before charon would; when ISM starts
// one it proposes its own 60 s, which charon accepts while keeping its own
// 24 s, and charon rekeys that SA at 22 s. So the rekeys alternate between
// the two ends, in both swanRoles, and each end's make-before-break is tried.
func TestSwanRekeyLifetime(t *testing.T) {
	t.Parallel()
	// The swanRoles mostly wait: they run at once, from goroutines, taking
	// one of go test's parallel slots between them instead of two.
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, role := range swanRoles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(role, func(t *testing.T) { swanRekeyLifetime(t, role) })
		}()
	}
}

// swanRekeyLifetime is one role of TestSwanRekeyLifetime.
func swanRekeyLifetime(t *testing.T, role string) {
	side := ismConf{global: pskRule("aes128", "sha", 14, ""), transforms: []string{"esp-aes128-hmac-sha"},
		tunnels: []ismTunnel{{extra: "  tunnel lifetime seconds 60\n"}}}
	peer := swanPeer{Proposals: "aes128-sha1-modp2048", ESP: "aes128-sha1",
		Timers: charon.Timers{Life: 24 * time.Second, Rekey: 22 * time.Second, Rand: charon.Never}}
	x := newLab(t, swanSpec(side, peer, swantest.Conf{}))
	x.bringUp(t, role)
	x.show(t, "clear ipsec tunnel statistics")
	tu := x.g.tunnels["t1"]
	since := tu.since.Load()
	p := x.startPing(t, ismHost, swanHost)
	x.waitFor(t, 90*time.Second, "two rekeys", func() bool { return x.rekeys(t) >= 2 })
	// The replaced inbound SA takes packets for 2 s more: stop
	// once the last one has gone.
	time.Sleep(3 * time.Second)
	sent, received := p.stop(t)
	t.Logf("%d rekeys; ping: %d sent, %d received", x.rekeys(t), sent, received)
	byISM, byCharon := quickModes(x.env.Log())
	t.Logf("quick modes started by ISM %d, by charon %d", byISM, byCharon)
	if byISM+byCharon < 3 || byISM < 1+b2i(role == "initiator") || byCharon < 1+b2i(role == "responder") {
		t.Errorf("quick modes started by ISM %d, by charon %d: want a rekey started by each end", byISM, byCharon)
	}
	if sent < 100 || received != sent {
		t.Errorf("ping through the rekeys: %d sent, %d received; want no loss", sent, received)
	}
	if !tu.Up() || tu.since.Load() != since {
		t.Errorf("the tunnel went down during the rekeys:\n%s", x.show(t, "show ipsec tunnel detail"))
	}
	for dir, c := range map[string]datapath.Traffic{"inbound": datapath.TrafficOf(&tu.d.RX), "outbound": datapath.TrafficOf(&tu.d.TX)} {
		if len(c.Drops) != 0 {
			t.Errorf("%s drops during the rekeys: %v", dir, c.Drops)
		}
	}
	if n := x.ikeCounters(t).rekeys; n < 2 {
		t.Errorf("show ipsec statistics: %d rekeys, want 2 or more", n)
	}
	x.traffic(t, ismHost, swanHost)
}

// TestSwanRekeyVolume: a small volume lifetime (tunnel lifetime
// kilobytes 1024) rekeys the tunnel during a 4 MiB TCP transfer, which
// arrives intact. No SA may carry more than its 1 MiB, so the transfer
// takes at least three quick modes after the first SA.
//
// Packets may be lost here, and the tunnel may go down for a moment: the
// rekey starts at 90 % of the volume, and at the transfer's rate the last
// 10 % can pass before the new SA is in, so the old one reaches its hard
// limit (lifetime-expired drops; IKE then deletes the SA pair, and the
// peer's packets on the inbound SA become no-sa drops). TCP sends them
// again. The drops are logged, not judged.
func TestSwanRekeyVolume(t *testing.T) {
	t.Parallel()
	for _, role := range swanRoles {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			side := ismConf{global: pskRule("aes128", "sha", 14, ""), transforms: []string{"esp-aes128-hmac-sha"},
				tunnels: []ismTunnel{{extra: "  tunnel lifetime kilobytes 1024\n"}}}
			x := newLab(t, swanSpec(side, swanPeer{Proposals: "aes128-sha1-modp2048", ESP: "aes128-sha1"}, swantest.Conf{}))
			x.bringUp(t, role)
			x.show(t, "clear ipsec tunnel statistics")
			tu := x.g.tunnels["t1"]
			since := tu.since.Load()
			before := x.ikeCounters(t).quickModes
			transferBetween(t, x.env.NSISM, ismHost, x.env.NSSwan, swanHost, 4<<20)
			if n := x.ikeCounters(t).quickModes - before; n < 3 {
				t.Errorf("%d quick modes during 4 MiB with a 1024 KB lifetime, want 3 or more:\n%s", n, x.show(t, "show ipsec tunnel detail"))
			}
			if n := x.rekeys(t); n < 1 {
				t.Errorf("show ipsec tunnel detail: %d rekeys, want some", n)
			}
			t.Logf("%d quick modes, %d rekeys, tunnel stayed up %v; drops: outbound %v, inbound %v, engine %v",
				x.ikeCounters(t).quickModes-before, x.rekeys(t), tu.since.Load() == since,
				datapath.TrafficOf(&tu.d.TX).Drops, datapath.TrafficOf(&tu.d.RX).Drops, x.g.Statistics().Engine.Drops)
			x.traffic(t, ismHost, swanHost)
		})
	}
}

var quickModeRE = regexp.MustCompile(`(generating|parsed) QUICK_MODE request (\d+) \[ HASH SA`)

// quickModes counts the quick modes in charon's log that ISM started (charon
// parsed their first message) and that charon started (it generated it).
func quickModes(log string) (byISM, byCharon int) {
	seen := map[string]bool{}
	for _, m := range quickModeRE.FindAllStringSubmatch(log, -1) {
		if seen[m[2]] {
			continue
		}
		seen[m[2]] = true
		if m[1] == "parsed" {
			byISM++
		} else {
			byCharon++
		}
	}
	return byISM, byCharon
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

var rekeysRE = regexp.MustCompile(`IKE(?:v2)?: up with .*, (\d+) rekeys`)

// rekeys returns the rekeys `show ipsec tunnel detail` counts for t1, -1
// when the tunnel is not up.
func (x *lab) rekeys(t *testing.T) int {
	t.Helper()
	m := rekeysRE.FindStringSubmatch(x.show(t, "show ipsec tunnel detail t1"))
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// bgPing is a ping running in the background until stopped, read by its statistics.
type bgPing struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startPing pings from ISM's host from to charon's host to, one echo
// every 0.2 s, until stopped (at most 2 minutes).
func (x *lab) startPing(t *testing.T, from, to string) *bgPing {
	t.Helper()
	p := &bgPing{}
	// ip netns exec execs ping: the pid is ping's.
	p.cmd = exec.Command("ip", "netns", "exec", x.env.NSISM, "ping", "-D", "-O", "-i", "0.2", "-W", "2", "-w", "120", "-I", from, to)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

var (
	pingStatsRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	pingSeqRE   = regexp.MustCompile(`icmp_seq=(\d+) `)
	// pingMissingRE is ping -D -O's line for an echo without a reply.
	pingMissingRE = regexp.MustCompile(`\[([0-9.]+)\] no answer yet for icmp_seq=(\d+)`)
)

// stop interrupts the ping, which then prints its statistics, and returns
// how many echo requests it sent and how many of them had their reply. The
// last request may still be on its way when ping stops: it counts as
// answered unless a later one went unanswered too.
func (p *bgPing) stop(t *testing.T) (sent, received int) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Wait()
	out := p.out.String()
	m := pingStatsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping printed no statistics:\n%s", out)
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	replied := map[int]bool{}
	for _, r := range pingSeqRE.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(r[1])
		replied[n] = true
	}
	if received == sent-1 && !replied[sent] {
		t.Logf("echo %d was on its way when ping stopped", sent)
		received++
	}
	if received != sent {
		// -D -O: when each echo that never had its reply was found
		// missing, to set beside the SA events in the logs.
		var lost []string
		for _, m := range pingMissingRE.FindAllStringSubmatch(out, -1) {
			if n, _ := strconv.Atoi(m[2]); !replied[n] {
				sec, _ := strconv.ParseFloat(m[1], 64)
				lost = append(lost, fmt.Sprintf("echo %d missing at %s", n, time.UnixMicro(int64(sec*1e6)).UTC().Format("15:04:05.000")))
			}
		}
		t.Logf("unanswered echoes: %s", strings.Join(lost, "; "))
	}
	return sent, received
}
