package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/transform"
)

// peerEnv makes the test binary the responding gateway of a scale or soak
// run (ServeScalePeer), as "ismbench scale-peer" is for ismbench.
const peerEnv = "ISM_BENCH_SCALE_PEER"

func TestMain(m *testing.M) {
	if os.Getenv(peerEnv) != "" {
		if err := ServeScalePeer(os.Args[len(os.Args)-1], os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testPeer runs this test binary as the peer gateway.
func testPeer(t *testing.T) PeerCommand {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return PeerCommand{Path: exe, Args: []string{"-test.run=^$"}, Env: []string{peerEnv + "=1"}}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and veth pairs (CI runs as root)")
	}
}

// TestSoakShort is `ismbench soak` in a minute, for IKEv1 and IKEv2: 24
// tunnels between two gateways (the responding one split over two
// processes and namespaces, as 10,000 tunnels are) with the shortest SA lifetime (30 s, so every
// tunnel rekeys at least once), a reload every 15 s that removes and adds
// tunnels, and the responder restarted half way, four tunnels carrying
// probes. The first responder process (20 tunnels, the sampled ones among
// them) deletes its SAs on the way out; the second one's deletes are lost,
// as a crashed peer's are (and as 891 of 10,000 were in a burst): the
// initiator's rekeys and acquires must find out that the new process
// does not know its IKE SAs, and every tunnel must be up again at the end
// (a packet routed into each one down asks for it). No tunnel may be
// without working SAs outside the restart (every probe lost for a
// second), and nothing may be left over (SoakResult.Problems): SAs,
// routes or rules out of step, malformed quick modes, file descriptors,
// goroutines.
func TestSoakShort(t *testing.T) {
	needRoot(t)
	// One after the other: the initiating gateways run in this process,
	// whose file descriptors and goroutines each soak counts.
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("IKEv%d", version), func(t *testing.T) { soakShort(t, version) })
	}
}

func soakShort(t *testing.T, version int) {
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	o := SoakOptions{Tunnels: 24, IKEVersion: version, IKE: IKE{Encryption: "aes128", Hash: "sha256", Group: 19}, Transform: tr,
		Duration: 50 * time.Second, Lifetime: 30 * time.Second, ReloadEvery: 15 * time.Second, Churn: 2,
		RestartPeer: true, RestartLosingDeletes: 1,
		Samples: 4, SampleEvery: 2 * time.Second, Peer: testPeer(t), PeerTunnels: 20, LogDir: t.TempDir()}
	r, err := MeasureSoak(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rekeys (%.1f/s), %d reloads, probes lost %d of %d (at %.1f s), %d during the restart (back after %.1f s), heap slope %.0f B/min, goroutine slope %.2f/min, fds %d->%d",
		r.Rekeys, r.RekeysPerS, r.Reloads, r.LostPings, r.ProbesSent, r.LostAt, r.LostPingsRestart, r.RestartGapS,
		r.HeapSlopeBytesPerMin, r.GoroutineSlopePerMin, r.FDsStart, r.FDsEnd)
	for _, p := range r.Problems() {
		t.Error(p)
	}
	// A probe lost now and then is the benchmark's figure (lost_pings); a
	// tunnel without working SAs loses every probe for longer.
	if r.LongestLossS >= 1 {
		t.Errorf("a sampled tunnel lost every probe for %.1f s outside the restart: %d probes lost, sent at %.1f s; reloads every %v",
			r.LongestLossS, r.LostPings, r.LostAt, o.ReloadEvery)
	}
	if last := r.Series.Goroutines[len(r.Series.Goroutines)-1]; last > r.Series.Goroutines[0]+4 {
		t.Errorf("goroutines went from %d to %d", r.Series.Goroutines[0], last)
	}
	if r.Rekeys < uint64(o.Tunnels) || r.Reloads < 3 || r.PeerRestarts != 1 {
		t.Errorf("%d rekeys, %d reloads, %d restarts: want every tunnel rekeyed, 3 reloads and a restart", r.Rekeys, r.Reloads, r.PeerRestarts)
	}
	if t.Failed() {
		for name := range r.LostByTunnel {
			i, _ := strconv.Atoi(strings.TrimPrefix(name, "ipsec:t"))
			_, peer := endpoints(i, o.plan())
			logTunnel(t, o.LogDir, []string{name, peer.String()}, 150)
		}
	}
}

// logTunnel logs the last n lines of each gateway's log in dir that name
// one of a tunnel's words (its name, its peer's address): what to read
// when a tunnel lost its probes.
func logTunnel(t *testing.T, dir string, words []string, n int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Log(err)
			continue
		}
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if slices.ContainsFunc(words, func(w string) bool { return hasWord(l, w) }) {
				lines = append(lines, l)
			}
		}
		t.Logf("%s: %d lines about %s, the last %d:\n%s", filepath.Base(f), len(lines), words, min(n, len(lines)),
			strings.Join(lines[max(0, len(lines)-n):], "\n"))
	}
}

// hasWord says whether w is in l, not followed by what would make it a
// longer name or address ("ipsec:t7" in "ipsec:t70", "::5" in "::5a").
func hasWord(l, w string) bool {
	for {
		k := strings.Index(l, w)
		if k < 0 {
			return false
		}
		l = l[k+len(w):]
		if l == "" || !strings.ContainsRune("0123456789abcdef:", rune(l[0])) {
			return true
		}
	}
}
