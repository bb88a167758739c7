package v1

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
)

// TestLifeTimers: many SAs' lifetime events run from one clock timer, in
// deadline order, each at its time; a stopped SA's events never run, and a
// soft event due after the hard one is left out.
func TestLifeTimers(t *testing.T) {
	clk := clocktest.New(time.Unix(1e9, 0))
	d := &Daemon{}
	d.lives = newTimerList(clk, d.runLife)
	start := clk.Now()
	var mu sync.Mutex
	var got []string
	event := func(name string) func(bool) {
		return func(soft bool) {
			mu.Lock()
			defer mu.Unlock()
			kind := "hard"
			if soft {
				kind = "soft"
			}
			got = append(got, fmt.Sprintf("%s %s %v", name, kind, clk.Now().Sub(start)))
		}
	}
	var ls [5]lifeTimer
	d.mu.Lock()
	d.armLifeLocked(&ls[0], 30*time.Second, 60*time.Second, event("a"))
	d.armLifeLocked(&ls[1], 10*time.Second, 20*time.Second, event("b"))
	d.armLifeLocked(&ls[2], 40*time.Second, 40*time.Second, event("c")) // no soft
	d.armLifeLocked(&ls[3], 5*time.Second, 50*time.Second, event("d"))
	d.armLifeLocked(&ls[4], 15*time.Second, 25*time.Second, event("e"))
	d.stopLifeLocked(&ls[4])
	d.mu.Unlock()
	if n := clk.Pending(); n != 1 {
		t.Fatalf("%d clock timers pending for 4 SAs, want 1", n)
	}
	clk.Advance(12 * time.Second)
	d.mu.Lock()
	d.stopLifeLocked(&ls[3]) // after its soft event, before its hard one
	d.mu.Unlock()
	clk.Advance(time.Minute)
	want := []string{"d soft 5s", "b soft 10s", "b hard 20s", "a soft 30s", "c hard 40s", "a hard 1m0s"}
	if !slices.Equal(got, want) {
		t.Errorf("events\n%q\nwant\n%q", got, want)
	}
	if n := clk.Pending(); n != 0 || len(d.lives.heap) != 0 {
		t.Errorf("%d clock timers and %d entries left", n, len(d.lives.heap))
	}
	// A new entry after the list emptied arms the timer again.
	d.mu.Lock()
	d.armLifeLocked(&ls[4], time.Second, 2*time.Second, event("e"))
	d.mu.Unlock()
	clk.Advance(3 * time.Second)
	if last := got[len(got)-1]; last != "e hard 1m14s" {
		t.Errorf("last event %q, want e hard 1m14s", last)
	}
}

// keepaliveCounter is a Transport that counts NAT-T keepalives.
type keepaliveCounter struct {
	mu   sync.Mutex
	sent []netip.AddrPort
}

func (k *keepaliveCounter) Send(netip.AddrPort, netip.AddrPort, []byte) error { return nil }

func (k *keepaliveCounter) SendKeepalive(_, remote netip.AddrPort) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sent = append(k.sent, remote)
	return nil
}

func (k *keepaliveCounter) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.sent)
}

// TestKeepalivesFromTimerList: an IKE SA behind a NAT sends a keepalive
// every Config.Keepalive, from the daemon's timer list, to its current
// peer endpoint, and none once deleted.
func TestKeepalivesFromTimerList(t *testing.T) {
	clk := clocktest.New(time.Unix(1e9, 0))
	tr := &keepaliveCounter{}
	d := &Daemon{tr: tr, cfg: &config{Config: ike.Config{Keepalive: 20 * time.Second}}}
	d.lives = newTimerList(clk, d.runLife)
	sa := &ikeSA{remote: netip.MustParseAddrPort("192.0.2.2:4500")}
	d.mu.Lock()
	d.armKeepalive(sa)
	d.mu.Unlock()
	clk.Advance(19 * time.Second)
	if n := tr.count(); n != 0 {
		t.Fatalf("%d keepalives after 19 s", n)
	}
	clk.Advance(41 * time.Second)
	if n := tr.count(); n != 3 {
		t.Fatalf("%d keepalives after 60 s, want 3", n)
	}
	d.mu.Lock()
	sa.remote = netip.MustParseAddrPort("192.0.2.3:4500") // the NAT mapping moved
	d.mu.Unlock()
	clk.Advance(20 * time.Second)
	d.mu.Lock()
	sa.dead = true
	d.stopLifeLocked(&sa.alive)
	d.mu.Unlock()
	clk.Advance(time.Minute)
	if n, last := tr.count(), tr.sent[len(tr.sent)-1]; n != 4 || last != sa.remote {
		t.Errorf("%d keepalives, the last to %s; want 4, the last to %s", n, last, sa.remote)
	}
	if n := clk.Pending(); n != 0 {
		t.Errorf("%d clock timers left", n)
	}
}
