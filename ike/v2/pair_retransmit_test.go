package v2

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
)

// TestPairFailoverRetransmitSchedule: the destination is dead; A's
// IKE_SA_INIT is sent again on the configured schedule (0.5 s, then twice
// as long each time but at most 1.5 s, three resends) and the tunnel fails
// over to its backup one capped wait after the last resend, 4.5 s after
// the first sending: what the operator set, not the built-in schedule.
func TestPairFailoverRetransmitSchedule(t *testing.T) {
	p, c, o := failoverTrio(t, time.Minute)
	schedule := ike.Retransmit{Timeout: 500 * time.Millisecond, Base: 2, Tries: 3, Cap: 1500 * time.Millisecond}
	cfg := p.a.d.cfg.Config
	cfg.PreSharedKeys = []ike.PreSharedKey{{Peer: addrB.String(), Key: []byte("pair-secret")}, {Peer: addrC.String(), Key: []byte("pair-secret")}}
	cfg.Retransmit = schedule
	if err := p.a.d.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	o.set(addrB, true)
	var mu sync.Mutex
	var sent []time.Duration
	start := p.clk.Now()
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		if remote.Addr() == addrB {
			mu.Lock()
			sent = append(sent, p.clk.Now().Sub(start))
			mu.Unlock()
		}
		return o.filter(local, remote, msg)
	})
	p.a.d.Acquire("t1")
	p.advance(t, 4500*time.Millisecond-time.Millisecond)
	if n := countEvents(p.a.lis, "failover", "t1"); n != 0 {
		t.Fatalf("failed over before the schedule ran out: %v", p.a.lis.Events())
	}
	p.advance(t, time.Millisecond)
	f := waitEvent(t, p.a.lis, "failover", "t1")
	if f.From != addrB || f.To != addrC {
		t.Fatalf("failover %v", f)
	}
	mu.Lock()
	got := fmt.Sprint(sent)
	mu.Unlock()
	if want := "[0s 500ms 1.5s 3s]"; got != want {
		t.Errorf("IKE_SA_INIT sent to the dead destination at %s, want %s", got, want)
	}
	p.advance(t, time.Second)
	waitEvent(t, c.lis, "up", "t1")
	if n := p.a.d.Status().Counters.Retransmits; n != 3 {
		t.Errorf("%d retransmissions counted, want 3", n)
	}
}
