package ism

import (
	"bufio"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pinger is iputils ping running in the background in a namespace, one
// echo request every interval, with every reply's sequence number and
// arrival time recorded (-D prints the time of each reply, -O each request
// left unanswered when the next one goes out). It is stopped by pid when
// the test ends.
type pinger struct {
	mu      sync.Mutex
	replies map[int]time.Time // icmp_seq → when its reply arrived
	last    int               // highest icmp_seq seen, answered or not
}

// ping -D -O output: "[1732700000.123456] 64 bytes from 203.0.113.1:
// icmp_seq=5 ttl=64 time=0.512 ms" and "[1732700000.323456] no answer yet
// for icmp_seq=6".
var (
	pingReplyRE    = regexp.MustCompile(`^\[(\d+)\.(\d{6})\] \d+ bytes from [^:]+: icmp_seq=(\d+) `)
	pingNoAnswerRE = regexp.MustCompile(`^\[\d+\.\d+\] no answer yet for icmp_seq=(\d+)`)
)

// startPinger pings dst from src in namespace ns every interval.
func startPinger(t *testing.T, ns, src, dst string, interval time.Duration) *pinger {
	t.Helper()
	p := &pinger{replies: map[int]time.Time{}}
	secs := strconv.FormatFloat(interval.Seconds(), 'f', 3, 64)
	cmd := exec.Command("ip", "netns", "exec", ns, "ping", "-D", "-O", "-n", "-i", secs, "-W", "1", "-I", src, dst)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.read(out)
	}()
	t.Cleanup(func() {
		// ip netns exec execs ping: the pid is ping's.
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		<-done
	})
	return p
}

func (p *pinger) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if m := pingReplyRE.FindStringSubmatch(line); m != nil {
			sec, _ := strconv.ParseInt(m[1], 10, 64)
			usec, _ := strconv.ParseInt(m[2], 10, 64)
			seq, _ := strconv.Atoi(m[3])
			p.mu.Lock()
			p.replies[seq] = time.Unix(sec, usec*1000)
			p.last = max(p.last, seq)
			p.mu.Unlock()
		} else if m := pingNoAnswerRE.FindStringSubmatch(line); m != nil {
			seq, _ := strconv.Atoi(m[1])
			p.mu.Lock()
			p.last = max(p.last, seq)
			p.mu.Unlock()
		}
	}
}

// lastReplyBefore returns the arrival time of the last reply that arrived
// before at.
func (p *pinger) lastReplyBefore(at time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	for _, r := range p.replies {
		if r.Before(at) && r.After(last) {
			last = r
		}
	}
	return last
}

// waitReplies waits until n replies arrived after at, or fails the test.
func (p *pinger) waitReplies(t *testing.T, what string, at time.Time, n int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		count := 0
		var first time.Time
		for _, r := range p.replies {
			if r.After(at) {
				count++
				if first.IsZero() || r.Before(first) {
					first = r
				}
			}
		}
		p.mu.Unlock()
		if count >= n {
			return first
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d ping replies after %s, want %d", what, count, at.Format(time.StampMilli), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lostAcross counts the requests that got no reply between the last one
// answered before from and the first one answered at or after to.
func (p *pinger) lostAcross(from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	before, after := 0, p.last+1
	for seq, r := range p.replies {
		if r.Before(from) {
			before = max(before, seq)
		}
		if !r.Before(to) {
			after = min(after, seq)
		}
	}
	lost := 0
	for seq := before + 1; seq < after; seq++ {
		if _, ok := p.replies[seq]; !ok {
			lost++
		}
	}
	return lost
}
