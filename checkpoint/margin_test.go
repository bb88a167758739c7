package checkpoint

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// TestMargin: rate × (period + latency + extra) × safety, rounded up, at
// least the floor.
func TestMargin(t *testing.T) {
	cases := []struct {
		p    Policy
		rate float64
		want uint64
	}{
		{Policy{}, 0, DefaultFloor},
		{Policy{}, 1000, DefaultFloor},
		{Policy{Period: time.Second, Latency: 10 * time.Millisecond}, 1e6, 2_020_000},
		{Policy{Period: 2 * time.Second, Safety: 3, Floor: 10}, 100, 600},
		{Policy{Period: time.Second, Extra: 2 * time.Second, Floor: 1}, 0.1, 1},
		{Policy{Period: time.Second, Floor: 1}, 0.3, 1},
		{Policy{Period: time.Second, Floor: 1}, 0.7, 2},
		{Policy{Period: time.Second}, math.MaxFloat64, math.MaxUint64},
	}
	for _, c := range cases {
		if got := c.p.Margin(c.rate); got.N != c.want {
			t.Errorf("%+v at %g pps: %d, want %d (%s)", c.p, c.rate, got.N, c.want, got)
		}
	}
	if s := (Policy{}).Margin(5).String(); !strings.Contains(s, "floor") || !strings.Contains(s, "5 pps") {
		t.Errorf("String: %q", s)
	}
}

// TestResumeAfter: the jump is the margin; with ESN it is capped at 2^31;
// without, running past 2^32−1 is ErrSeqExhausted.
func TestResumeAfter(t *testing.T) {
	p := Policy{Period: time.Second}
	sa := &SA{ID: ipsec.SAID{SPI: 0x1234}, Seq: 1000, Rate: 50}
	after, m, err := p.ResumeAfter(sa)
	if err != nil || after != 1000+DefaultFloor || m.N != DefaultFloor {
		t.Fatalf("%d %v %v", after, m, err)
	}
	sa.Seq = math.MaxUint32 - DefaultFloor
	if _, _, err := p.ResumeAfter(sa); !errors.Is(err, ErrSeqExhausted) {
		t.Fatalf("at the end of the 32-bit space: %v", err)
	}
	sa.Seq--
	if after, _, err := p.ResumeAfter(sa); err != nil || after != math.MaxUint32-1 {
		t.Fatalf("one number left: %d %v", after, err)
	}
	sa.ESN, sa.Rate = true, 1e12
	after, m, err = p.ResumeAfter(sa)
	if err != nil || !m.Capped || after != sa.Seq+MaxESNMargin || !strings.Contains(m.String(), "ESN cap") {
		t.Fatalf("ESN: %d %v %v", after, m, err)
	}
	sa.Seq = math.MaxUint64 - 5
	if _, _, err := p.ResumeAfter(sa); !errors.Is(err, ErrSeqExhausted) {
		t.Fatalf("end of the 64-bit space: %v", err)
	}
}

// TestPlan: how each kind of tunnel carries on, and why not.
func TestPlan(t *testing.T) {
	manual := sampleTunnel(t, "m", "esp-aes128-gcm16", 1)
	manual.IKE = nil
	d := Plan(&manual, Restart{Policy: Policy{Period: time.Second}, Down: time.Minute})
	if d.Action != Resume || len(d.SAs) != 2 || d.SAs[0].After != manual.SAs[0].Seq+DefaultFloor ||
		d.SAs[0].Used.Time != manual.SAs[0].Used.Time+time.Minute {
		t.Fatalf("manual: %+v", d)
	}
	if d := Plan(&manual, Restart{Down: 2 * time.Hour}); d.Action != Refuse || !strings.Contains(d.Reason, "hard lifetime") {
		t.Fatalf("manual past its lifetime: %+v", d)
	}
	signaled := sampleTunnel(t, "s", "esp-aes128-gcm16", 2)
	v2 := func(k IKESA) bool { return k.Version == 2 && k.Format == 1 }
	if d := Plan(&signaled, Restart{Signaled: true, ImportIKE: v2}); d.Action != Resume || !strings.Contains(d.Reason, "1 IKE SAs imported") {
		t.Fatalf("signaled: %+v", d)
	}
	if d := Plan(&signaled, Restart{Signaled: true}); d.Action != Renegotiate || !strings.Contains(d.Reason, "IKEv2 record format 1") {
		t.Fatalf("no importer: %+v", d)
	}
	if d := Plan(&manual, Restart{Signaled: true, ImportIKE: v2}); d.Action != Renegotiate || !strings.Contains(d.Reason, "no IKE SA") {
		t.Fatalf("no IKE record: %+v", d)
	}
	signaled.SAs[0].ESN, signaled.SAs[0].Seq = false, math.MaxUint32-10
	if d := Plan(&signaled, Restart{Signaled: true, ImportIKE: v2}); d.Action != Renegotiate || !strings.Contains(d.Reason, "sequence") {
		t.Fatalf("exhausted: %+v", d)
	}
}
