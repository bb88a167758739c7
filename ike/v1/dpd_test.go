package v1

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/testvec"
	"github.com/ismgw/ism/ipsec"
)

// The seed's rules, checked on the decision alone with a made-up clock.

func testDaemon(t *testing.T, tunnels ...ike.Tunnel) *Daemon {
	t.Helper()
	cfg := baseConfig()
	cfg.Tunnels = tunnels
	d, err := New(cfg, noInstaller{}, dropTransport{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDPDRules(t *testing.T) {
	d := testDaemon(t)
	cfg := ipsec.DPD{Enabled: true}.Resolve(ipsec.DPD{}) // the seed's 30 s, 60 s, 150 s
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	ago := func(s float64) time.Time { return t0.Add(-time.Duration(s * float64(time.Second))) }
	cases := []struct {
		name            string
		lastOut, lastIn time.Time
		want            bool
	}{
		{"sending, heard 59 s ago", ago(1), ago(59), false},
		{"sending, silent 60 s", ago(1), ago(60), true},
		{"sent 30 s ago, silent 90 s", ago(30), ago(90), true},
		{"sent 31 s ago, silent 90 s", ago(31), ago(90), false},
		{"idle 149 s", ago(149), ago(149), false},
		{"idle 150 s", ago(150), ago(150), true},
		{"never sent, heard 149 s ago", time.Time{}, ago(149), false},
		{"never sent, heard 150 s ago", time.Time{}, ago(150), true},
		{"receiving only", ago(200), ago(0), false},
	}
	for _, c := range cases {
		p := &dpdPeer{cfg: cfg, lastOut: c.lastOut, lastIn: c.lastIn}
		send, dead := p.decide(t0, d)
		if send != c.want || dead {
			t.Errorf("%s: send %v dead %v, want send %v", c.name, send, dead, c.want)
		}
		if send && (p.outstanding != 1 || p.firstSeq != p.seq || p.seq == 0 || p.seq&0x80000000 != 0) {
			t.Errorf("%s: inquiry state %+v", c.name, p)
		}
	}
}

// TestDPDRetries: an unanswered inquiry is repeated every retry
// interval with the next sequence number, Retries times, then the peer is
// dead; traffic received meanwhile ends the inquiry.
func TestDPDRetries(t *testing.T) {
	d := testDaemon(t)
	cfg := ipsec.DPD{Enabled: true}.Resolve(ipsec.DPD{}) // retry every 5 s, 3 times
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	p := &dpdPeer{cfg: cfg, lastIn: t0.Add(-150 * time.Second)}
	if send, _ := p.decide(t0, d); !send {
		t.Fatal("no inquiry after 150 s of silence")
	}
	first := p.seq
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for i, s := range []int{5, 10, 15} {
		if send, dead := p.decide(at(s-1), d); send || dead {
			t.Fatalf("retry %d before its interval", i+1)
		}
		if send, dead := p.decide(at(s), d); !send || dead || p.seq != first+uint32(i+1) || p.outstanding != i+2 {
			t.Fatalf("retry %d: send %v dead %v seq %d outstanding %d", i+1, send, dead, p.seq, p.outstanding)
		}
		if got := p.next(at(s)); got != cfg.RetryInterval {
			t.Errorf("next check in %v, want the retry interval", got)
		}
	}
	if send, dead := p.decide(at(20), d); send || !dead {
		t.Fatalf("after 4 unanswered R-U-THERE: send %v dead %v", send, dead)
	}

	p = &dpdPeer{cfg: cfg, lastIn: t0.Add(-150 * time.Second)}
	p.decide(t0, d)
	p.lastIn = at(2) // a packet arrived
	if send, dead := p.decide(at(5), d); send || dead || p.outstanding != 0 {
		t.Fatalf("traffic after the inquiry: send %v dead %v outstanding %d", send, dead, p.outstanding)
	}
}

// TestDPDNext: the next check comes when a rule can fire if the traffic
// stays as it is, and at least every half of the shortest timer.
func TestDPDNext(t *testing.T) {
	cfg := ipsec.DPD{Enabled: true}.Resolve(ipsec.DPD{})
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		lastOut, lastIn time.Time
		want            time.Duration
	}{
		{t0.Add(-time.Second), t0.Add(-50 * time.Second), 10 * time.Second},       // silent for 60 s at +10 s
		{t0.Add(-time.Second), t0.Add(-time.Second), 15 * time.Second},            // half of 30 s
		{time.Time{}, t0.Add(-140 * time.Second), 10 * time.Second},               // idle at +10 s
		{t0.Add(-40 * time.Second), t0.Add(-149 * time.Second), 15 * time.Second}, // idle only at +110 s: the poll first
	} {
		p := &dpdPeer{cfg: cfg, lastOut: c.lastOut, lastIn: c.lastIn}
		if got := p.next(t0); got != c.want {
			t.Errorf("out %v in %v: next %v, want %v", t0.Sub(c.lastOut), t0.Sub(c.lastIn), got, c.want)
		}
	}
}

// TestFailoverHeldDown: a failure within the hold-down does not switch;
// the switch waits, and Status says so.
func TestFailoverHeldDown(t *testing.T) {
	tu := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")
	tu.BackupDestination = addrC
	tu.FailoverHoldDown = time.Hour
	d := testDaemon(t, tu)
	d.mu.Lock()
	x := d.tunnels["t1"]
	switched := d.now()
	x.history().switchedAt = switched
	d.mu.Unlock()
	d.failover(x, addrB, "test", time.Time{})
	st := tunnelStatus(t, d, "t1")
	if st.Destination != addrB || st.Failover.OnBackup || !st.Failover.Pending || !st.Failover.HoldDownUntil.Equal(switched.Add(time.Hour)) {
		t.Errorf("status %+v", st)
	}
	// A failure of a destination the tunnel does not use is ignored.
	d.failover(x, addrC, "test", time.Time{})
	if n := d.Status().Counters.Failovers; n != 0 {
		t.Errorf("%d failovers", n)
	}
}

func TestSetupFailure(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{errTimeout, true},
		{fmt.Errorf("%w: HASH mismatch", errAuth), true},
		{notifyError{NotifyNoProposalChosen}, true},
		{errors.New("v1: no IKE policy usable with this peer (no pre-shared key or certificate)"), true},
		{fmt.Errorf("v1: exchange canceled: %w", context.Canceled), false},
	} {
		if got := setupFailure(c.err); got != c.want {
			t.Errorf("%v: %v", c.err, got)
		}
	}
}

// TestDPDWireFormat checks the DPD vendor ID and notify bodies against
// RFC 3706 §5.1 and §5.3, and that what is built parses back.
func TestDPDWireFormat(t *testing.T) {
	v := testvec.Load(t, "testdata/vectors/rfc3706-5.3-r-u-there.txt")
	if !bytes.Equal(dpdVendorID, v.Hex(t, "vendor-id")) {
		t.Errorf("vendor ID %x, want %x", dpdVendorID, v.Hex(t, "vendor-id"))
	}
	var ic, rc Cookie
	copy(ic[:], v.Hex(t, "icookie"))
	copy(rc[:], v.Hex(t, "rcookie"))
	seq := binary.BigEndian.Uint32(v.Hex(t, "seq"))
	for _, c := range []struct {
		name string
		t    NotifyType
	}{{"r-u-there", NotifyDPDRUThere}, {"r-u-there-ack", NotifyDPDRUThereAck}} {
		got := dpdNotify(ic, rc, c.t, seq)
		if !bytes.Equal(got, v.Hex(t, c.name)) {
			t.Errorf("%s: %x, want %x", c.name, got, v.Hex(t, c.name))
		}
		n, err := ParseNotify(got)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := dpdSeq(n); !ok || s != seq || n.Type != c.t {
			t.Errorf("%s parses back as %v seq %d ok %v", c.name, n.Type, s, ok)
		}
		n.Data = n.Data[:3]
		if _, ok := dpdSeq(n); ok {
			t.Errorf("%s: a 3-byte sequence number accepted", c.name)
		}
	}
}
