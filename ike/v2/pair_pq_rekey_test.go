package v2

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// Pair tests of rekeys with ML-KEM-768 as an additional key exchange
// (RFC 9370 §2.2.4): CREATE_CHILD_SA with the classical KE, then one
// IKE_FOLLOWUP_KE linked by ADDITIONAL_KEY_EXCHANGE.

// followups counts the IKE_FOLLOWUP_KE requests each way of a log, and
// checks that each follows a CREATE_CHILD_SA request the same way.
func followups(t *testing.T, log *exchangeLog) map[string]int {
	t.Helper()
	n := map[string]int{}
	last := map[string]string{}
	for _, e := range log.list() {
		if strings.HasSuffix(e, " response") {
			continue
		}
		var dir, ex string
		var id int
		fmt.Sscanf(e, "%s %s %d", &dir, &ex, &id)
		if ex == "IKE_FOLLOWUP_KE" && last[dir] != "CREATE_CHILD_SA" {
			t.Errorf("%s after %s", e, last[dir])
		}
		if ex == "IKE_FOLLOWUP_KE" {
			n[dir]++
		}
		last[dir] = ex
	}
	return n
}

// TestPairIKERekeyMLKEM: the IKE SA of a hybrid X25519+ML-KEM-768 setup
// is rekeyed by either end with ML-KEM again: one IKE_FOLLOWUP_KE from
// the rekeying end, the new IKE SA on both sides reports it, the child
// SAs move untouched, and a child rekey over the new IKE SA (its SK_d)
// gives matching keys.
func TestPairIKERekeyMLKEM(t *testing.T) {
	for _, c := range []struct {
		name         string
		lifeA, lifeB time.Duration
		dir          string
	}{{"InitiatorRekeys", time.Hour, 4 * time.Hour, "A>B"}, {"ResponderRekeys", 4 * time.Hour, time.Hour, "B>A"}} {
		t.Run(c.name, func(t *testing.T) {
			pa, pb := pqPolicy(31, false, ike.MLKEM768), pqPolicy(31, false, ike.MLKEM768)
			pa.Lifetime, pb.Lifetime = c.lifeA, c.lifeB
			p := pqPair(t, pa, pb)
			p.up(t, "t1")
			var log exchangeLog
			p.w.SetFilter(log.filter)
			old := p.a.d.Status().IKESAs[0]
			p.advance(t, 55*time.Minute)
			checkIKERekeyed(t, p, old, 1)
			if n := followups(t, &log); n[c.dir] != 1 || len(n) != 1 {
				t.Fatalf("IKE_FOLLOWUP_KE requests %v, want one %s", n, c.dir)
			}
			for _, s := range []*side{p.a, p.b} {
				st := s.d.Status()
				if !slices.Equal(st.IKESAs[0].AdditionalKE, []int{ike.MLKEM768}) || st.Counters.FollowupKEExchanges != 1 {
					t.Fatalf("after the rekey: %+v, %d IKE_FOLLOWUP_KE", st.IKESAs[0], st.Counters.FollowupKEExchanges)
				}
			}
		})
	}
}

// TestPairChildRekeyMLKEM: a child SA with PFS (ECP-256) on a hybrid IKE
// SA is rekeyed by either end with ML-KEM-768 in IKE_FOLLOWUP_KE: make
// before break, matching keys, the exchange counted on both sides.
func TestPairChildRekeyMLKEM(t *testing.T) {
	for _, aRekeys := range []bool{true, false} {
		t.Run(fmt.Sprintf("aRekeys=%v", aRekeys), func(t *testing.T) {
			p := pqPair(t, pqPolicy(19, false, ike.MLKEM768), pqPolicy(19, false, ike.MLKEM768))
			for _, s := range []*side{p.a, p.b} {
				s.d.mu.Lock()
				for _, tu := range s.d.tunnels {
					tu.cfg.PFSGroup = 19
					tu.cfg.Lifetime = ipsec.Lifetime{Time: 4 * time.Hour}
				}
				s.d.mu.Unlock()
			}
			rekeyer, dir := p.a, "A>B"
			if !aRekeys {
				rekeyer, dir = p.b, "B>A"
			}
			rekeyer.d.mu.Lock()
			rekeyer.d.tunnels["t1"].cfg.Lifetime = ipsec.Lifetime{Time: time.Hour}
			rekeyer.d.mu.Unlock()
			p.up(t, "t1")
			var log exchangeLog
			p.w.SetFilter(log.filter)
			checkMakeBeforeBreak(t, p, func() { p.advance(t, 55*time.Minute) })
			if n := followups(t, &log); n[dir] != 1 || len(n) != 1 {
				t.Fatalf("IKE_FOLLOWUP_KE requests %v, want one %s", n, dir)
			}
			for _, s := range []*side{p.a, p.b} {
				if st := s.d.Status(); st.Counters.FollowupKEExchanges != 1 || st.Tunnels[0].PFSGroup != 19 {
					t.Fatalf("%d IKE_FOLLOWUP_KE, PFS %d", st.Counters.FollowupKEExchanges, st.Tunnels[0].PFSGroup)
				}
			}
		})
	}
}
