package bench

import (
	"strings"
	"testing"
	"time"
)

// TestProgressWindow: wait lets the pump start window tunnels more than
// are up on the responder, and returns when all are up on both sides.
func TestProgressWindow(t *testing.T) {
	const n, window = 10, 3
	p := newProgress(n, n)
	start := time.Now()
	started := 0
	var h harness
	var phase1, all time.Duration
	err := h.run(func() {
		phase1, all = p.wait(&h, start, start.Add(30*time.Second), window, func(limit int) {
			if limit-respUp(p) > window {
				h.Fatalf("limit %d with %d up: more than %d in flight", limit, respUp(p), window)
			}
			for ; started < limit; started++ {
				i := started
				// Each tunnel comes up a little later, on another
				// goroutine, as IKE's would.
				time.AfterFunc(time.Millisecond, func() {
					now := time.Now()
					p.addPhase1(now)
					p.addUp(i, now)
					p.addRespUp(now)
				})
			}
		}, nil, func() string { return "" })
	})
	if err != nil {
		t.Fatal(err)
	}
	if started != n || phase1 <= 0 || all < phase1 {
		t.Errorf("started %d of %d; phase 1 after %v, all after %v", started, n, phase1, all)
	}
	if q := p.quantile(start, 0.5); q <= 0 || q > all {
		t.Errorf("half up after %v, all after %v", q, all)
	}
	if len(p.down(n)) != 0 {
		t.Errorf("down: %v", p.down(n))
	}
}

// TestProgressStall: a run where nothing comes up fails with what state
// says, instead of waiting for the deadline.
func TestProgressStall(t *testing.T) {
	p := newProgress(1, 1)
	p.stall = 2 * time.Second
	var h harness
	start := time.Now()
	err := h.run(func() {
		p.wait(&h, start, start.Add(time.Hour), 0, func(int) {}, nil, func() string { return "the peer is silent" })
	})
	if err == nil || !strings.Contains(err.Error(), "no progress") || !strings.Contains(err.Error(), "the peer is silent") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d < p.stall {
		t.Errorf("gave up after %v, before the stall limit", d)
	}
}

func TestProgressDuplicateUp(t *testing.T) {
	p := newProgress(1, 2)
	now := time.Now()
	p.addUp(1, now)
	p.addUp(1, now) // a tunnel logged up twice counts once
	if p.up != 1 || len(p.down(2)) != 1 || p.down(2)[0] != 0 {
		t.Errorf("up %d, down %v", p.up, p.down(2))
	}
}

func TestParseStatCPU(t *testing.T) {
	// proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags
	// minflt cminflt majflt cmajflt utime stime ...
	stat := "4242 (charon worker) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 17 0 1000 0 0"
	d, err := parseStatCPU(stat)
	if err != nil || d != 3*time.Second {
		t.Errorf("%v, %v; want 3s", d, err)
	}
	for _, bad := range []string{"", "4242 charon S", "4242 (c) S 1 2"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func respUp(p *progress) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.respUp
}

func TestParseMachineBusy(t *testing.T) {
	// proc(5): cpu user nice system idle iowait irq softirq steal guest
	// guest_nice, in USER_HZ.
	stat := "cpu  300 20 100 500 80 0 50 30 0 0\ncpu0 150 10 50 250 40 0 25 15 0 0\n"
	busy, err := parseMachineBusy(stat)
	if err != nil || busy != 5*time.Second {
		t.Errorf("%v, %v; want 5s", busy, err)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3 x 5 6 7 8\n", "cpu 1 2 3\n"} {
		if _, err := parseMachineBusy(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
