package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// An iperf3 TCP stream through the cluster (issue 11, §3: kill -9 of the
// owner during a continuous ping and an iperf3 stream). Its ends are off
// the nodes, so that a takeover moves it rather than ending it: the
// client on an inside host H (203.0.113.60, on the transport bridge,
// routing B's m1 address via the VIP), the server on B behind m1
// (198.51.100.65; B routes H through m1). The nodes forward between the
// bridge and m1.

const (
	streamHost   = "203.0.113.60"
	streamServer = "198.51.100.65"
)

// stream is a running iperf3 client.
type stream struct {
	t       *testing.T
	cmd     *exec.Cmd
	started time.Time
	out     bytes.Buffer
	done    chan error
}

// startStream starts iperf3's server on B, H, and a client sending
// rate bit/s for d; the nodes forward.
func (x *clusterLab) startStream(t *testing.T, d time.Duration, rate string) *stream {
	t.Helper()
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatalf("iperf3 is required (make deps, or apt-get install iperf3): %v", err)
	}
	for _, n := range x.nodes {
		x.lab.MustRun(n.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	h := x.lab.NS("h")
	x.lab.Link(h, "eth0", netip.MustParsePrefix(streamHost+"/24"), x.tx, "th", netip.Prefix{})
	x.lab.MustRun(x.tx, "ip", "link", "set", "th", "master", "br0")
	x.lab.MustRun(h, "ip", "route", "add", streamServer+"/32", "via", clusterVIP)
	x.lab.Start(x.lab.Command(x.bNS, "iperf3", "-s", "-B", streamServer))
	x.b.waitFor(10*time.Second, "iperf3 listening on B", func() bool {
		out, _ := x.lab.Run(x.bNS, "ss", "-Hltn", "sport", "=", ":5201")
		return strings.Contains(out, streamServer)
	})
	s := &stream{t: t, done: make(chan error, 1)}
	s.cmd = x.lab.Command(h, "iperf3", "-c", streamServer, "-B", streamHost, "-t", fmt.Sprint(int(d.Seconds())),
		"-b", rate, "-i", "0.5", "-J", "--connect-timeout", "5000")
	s.cmd.Stdout = &s.out
	s.started = time.Now()
	x.lab.Start(s.cmd)
	go func() { s.done <- s.cmd.Wait() }()
	return s
}

// iperfReport is what the test reads of iperf3's JSON.
type iperfReport struct {
	Intervals []struct {
		Sum struct {
			Start, End  float64
			Bytes       uint64
			Retransmits int
		}
	}
	End struct {
		SumSent struct {
			Bytes       uint64
			Retransmits int
		} `json:"sum_sent"`
		SumReceived struct{ Bytes uint64 } `json:"sum_received"`
	}
	Error string
}

// wait waits for the client's end and returns its report; the test fails
// if iperf3 failed.
func (s *stream) wait(within time.Duration) iperfReport {
	s.t.Helper()
	var err error
	select {
	case err = <-s.done:
	case <-time.After(within):
		s.t.Fatalf("iperf3 did not finish within %v", within)
	}
	var r iperfReport
	if jerr := json.Unmarshal(s.out.Bytes(), &r); jerr != nil {
		s.t.Fatalf("iperf3's report: %v\n%s", jerr, s.out.String())
	}
	if err != nil || r.Error != "" {
		s.t.Fatalf("iperf3: %v: %s", err, r.Error)
	}
	return r
}

// stalled returns the seconds of the report's intervals that carried
// nothing, and the last such interval's end (seconds into the stream).
func (r *iperfReport) stalled() (secs, lastEnd float64) {
	for _, iv := range r.Intervals {
		if iv.Sum.Bytes == 0 {
			secs += iv.Sum.End - iv.Sum.Start
			lastEnd = iv.Sum.End
		}
	}
	return secs, lastEnd
}
