package checkpoint

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
)

// TestCheckpointerSchedule runs on the fake clock: a checkpoint each
// period, each SA's rate measured from its sequence numbers, a burst
// remembered (halved each period), the write timed, a failure counted.
func TestCheckpointerSchedule(t *testing.T) {
	clk := clocktest.New(time.Unix(1700000000, 0))
	var mu sync.Mutex
	seq := uint64(100)
	var written []*State
	failNext := false
	tu := sampleTunnel(t, "t", "esp-aes128-gcm16", 1)
	c := NewCheckpointer(Config{Clock: clk, Period: time.Second,
		Source: func() ([]Tunnel, error) {
			mu.Lock()
			defer mu.Unlock()
			x := tu
			x.SAs = append([]SA(nil), tu.SAs...)
			x.SAs[0].Seq = seq
			x.SAs[0].CipherKey = tu.SAs[0].CipherKey.Clone()
			return []Tunnel{x}, nil
		},
		Sink: func(s *State) error {
			mu.Lock()
			defer mu.Unlock()
			if failNext {
				failNext = false
				return errors.New("disk full")
			}
			cp := *s
			cp.Tunnels = []Tunnel{{Name: s.Tunnels[0].Name, SAs: append([]SA(nil), s.Tunnels[0].SAs...)}}
			written = append(written, &cp)
			return nil
		},
	})
	c.Start()
	defer c.Stop()
	step := func(add uint64) *State {
		mu.Lock()
		seq += add
		n := len(written)
		mu.Unlock()
		clk.Advance(time.Second)
		mu.Lock()
		defer mu.Unlock()
		if len(written) != n+1 {
			t.Fatalf("%d checkpoints after a period, want %d", len(written), n+1)
		}
		return written[n]
	}
	if s := step(0); s.Tunnels[0].SAs[0].Rate != 0 || s.Period != time.Second {
		t.Fatalf("first checkpoint: rate %v", s.Tunnels[0].SAs[0].Rate)
	}
	if r := step(5000).Tunnels[0].SAs[0].Rate; r != 5000 {
		t.Fatalf("rate %v, want 5000", r)
	}
	if r := step(100).Tunnels[0].SAs[0].Rate; r != 2500 {
		t.Fatalf("after the burst %v, want it halved to 2500", r)
	}
	if r := step(3000).Tunnels[0].SAs[0].Rate; r != 3000 {
		t.Fatalf("rate %v, want 3000", r)
	}
	mu.Lock()
	failNext = true
	mu.Unlock()
	clk.Advance(time.Second)
	st := c.Status()
	if st.Writes != 4 || st.Failures != 1 || st.LastError != "disk full" || st.SAs != 2 {
		t.Fatalf("status %+v", st)
	}
	step(0)
	if st := c.Status(); st.LastError != "" || st.Writes != 5 {
		t.Fatalf("status after recovery %+v", st)
	}
	zero := make([]byte, len(tu.SAs[0].CipherKey))
	if bytes.Equal(tu.SAs[0].CipherKey, zero) || !bytes.Equal(written[0].Tunnels[0].SAs[0].CipherKey, zero) {
		t.Fatal("the checkpointer must zero the keys it was given, and only those")
	}
}

// TestCheckpointerLatency: the time a write takes goes into the next
// state, so that margins cover it.
func TestCheckpointerLatency(t *testing.T) {
	clk := clocktest.New(time.Unix(0, 0))
	var last *State
	c := NewCheckpointer(Config{Clock: clk,
		Source: func() ([]Tunnel, error) { return nil, nil },
		Sink: func(s *State) error {
			cp := *s
			last = &cp
			clk.Advance(30 * time.Millisecond)
			return nil
		}})
	for range 2 {
		if err := c.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	if last.WriteLatency != 30*time.Millisecond || c.Status().MaxLatency != 30*time.Millisecond {
		t.Fatalf("latency %v, status %+v", last.WriteLatency, c.Status())
	}
}
