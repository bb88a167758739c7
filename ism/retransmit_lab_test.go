package ism

import (
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest"
)

// TestDPDSetupFailoverMainModeSchedule: in main mode the destination (a
// charon with another pre-shared key) cannot decrypt ISM's fifth message
// and says nothing; with "ipsec ike retransmit count 2 timeout 500 base
// 1" ISM gives up on it after 1.5 s and fails over to the backup, instead
// of the 82.5 s the built-in schedule takes.
func TestDPDSetupFailoverMainModeSchedule(t *testing.T) {
	t.Parallel()
	x := newLab(t, dpdSpec(dpdLabConfig{backup: true, primaryPSK: "not-the-key-ism-has",
		global: "ipsec failover hold-down 2\nipsec ike retransmit count 2 timeout 500 base 1\n"}))
	p := startPinger(t, x.env.NSISM, "198.51.100.1", "203.0.113.1", pingInterval)
	start := time.Now()
	// The default schedule would not even have given up by then.
	p.waitReplies(t, "through the tunnel to the backup", time.Time{}, 3, 40*time.Second)
	t.Logf("traffic through the backup %v after the first packet", time.Since(start).Round(time.Millisecond))
	st := x.waitUpWith(t, swanBackupAddr, 5*time.Second)
	f := st.IKE.Failover
	if f.Count != 1 || f.LastFrom != swantest.SwanAddr || !f.OnBackup || !strings.HasPrefix(f.LastReason, "phase 1: ") {
		t.Errorf("failover state %+v, want one switch to the backup after phase 1 failed", f)
	}
	if c := statsIKE(t, x.g); c.Retransmits != 2 || c.Failovers != 1 {
		t.Errorf("IKE counters %+v: want the fifth message resent twice and one failover", c)
	}
}
