package ism

import (
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest"
)

// TestSwanV2Failover: an IKEv2 tunnel with a backup destination, traffic
// flowing to charon at the destination, which was set up by either end
// (the role); the destination charon is killed by pid. ISM's liveness
// checks (DPD's timers) find it dead, its SAs go, the tunnel fails over to
// the backup charon (ISM initiates there) and the traffic resumes; the
// failover trap tells it. The protocol's variations (link down, hold-down,
// setup failures) are ike/v2's and the IKEv1 DPD tests'; this is the
// gateway's wiring of IKEv2 to them.
func TestSwanV2Failover(t *testing.T) {
	t.Parallel()
	for _, role := range swanRoles {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			x := newLab(t, dpdSpec(dpdLabConfig{global: failoverTimers.lines() + "ipsec failover hold-down 2\n", backup: true, traps: true, ikev2: true}))
			if role == "responder" {
				if out, err := x.env.Initiate("net", 20*time.Second); err != nil {
					t.Fatalf("charon initiate: %v\n%s", err, out)
				}
			}
			p := startPinger(t, x.env.NSISM, ismHost, swanHost, pingInterval)
			p.waitReplies(t, "through the tunnel to the destination", time.Time{}, 5, 30*time.Second)
			x.waitUpWith(t, swantest.SwanAddr, 5*time.Second)
			_, before := showSAs(t, x.g)
			old := saSPIs(before, swantest.SwanAddr)

			lostAt := time.Now()
			x.env.Kill()
			restored := p.waitReplies(t, "through the tunnel to the backup", lostAt, 3, 45*time.Second)
			st := x.waitUpWith(t, swanBackupAddr, 10*time.Second)
			t.Logf("traffic through the backup %v after the destination was killed; %d pings lost",
				restored.Sub(lostAt).Round(time.Millisecond), p.lostAcross(lostAt, restored))
			f := st.IKE.Failover
			if f.Count != 1 || f.LastFrom != swantest.SwanAddr || f.LastTo != swanBackupAddr || !f.OnBackup {
				t.Errorf("failover state %+v, want one switch from %s to %s", f, swantest.SwanAddr, swanBackupAddr)
			}
			x.wantShow(t, "show ipsec tunnel detail", "IKEv2: up with "+swanBackupAddr.String(), "last from "+swantest.SwanAddr.String()+" to "+swanBackupAddr.String())
			saText, sas := showSAs(t, x.g)
			if left := saSPIs(sas, swantest.SwanAddr); len(left) != 0 || len(old) != 2 {
				t.Errorf("SAs with the dead destination: before %v, after %v\n%s", old, left, saText)
			}
			if n := charonChildren(t, x.backup); n == 0 {
				t.Error("the backup charon has no installed CHILD_SA")
			}
			v2c := x.g.Statistics().IKEVersions["ikev2"]
			if v2c.DPDPeersDead != 1 || v2c.DPDInquiries < 1 {
				t.Errorf("IKEv2 counters: %d peers dead, %d liveness checks; want 1 and some", v2c.DPDPeersDead, v2c.DPDInquiries)
			}
			fo, _ := x.traps.wait(t, "failover", 0, 5*time.Second, func(r rxTrap) bool {
				return r.oid == oidTrapFailover && r.vars[oidVarFrom] == swantest.SwanAddr.String() && r.vars[oidVarTo] == swanBackupAddr.String()
			})
			if !strings.HasPrefix(fo.vars[oidVarReason], "DPD: ") {
				t.Errorf("failover trap reason %q, want DPD's", fo.vars[oidVarReason])
			}
			x.traps.wait(t, "tunnel-up", 0, 5*time.Second, trapIs(oidTrapTunnelUp, swanBackupAddr))
		})
	}
}
