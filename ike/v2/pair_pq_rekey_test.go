package v2

import (
	"fmt"
	"net/netip"
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

// TestPairFollowupStateLost: an IKE_FOLLOWUP_KE with a link the responder
// does not know gets STATE_NOT_FOUND (RFC 9370 §2.2.4); and a responder
// whose next IKE_FOLLOWUP_KE never comes forgets the exchange after
// followupWait without making the child SA.
func TestPairFollowupStateLost(t *testing.T) {
	p := pqPair(t, pqPolicy(19, false, ike.MLKEM768), pqPolicy(19, false, ike.MLKEM768))
	p.up(t, "t1")
	sa := onlyIKESA(t, p.a)
	got := make(chan error, 1)
	sa.lock()
	sa.followupsInitiator([]int{ike.MLKEM768}, []byte("no-such-link"), reqChild, func(sa *ikeSA, secrets [][]byte, err error) { got <- err })
	sa.unlock()
	if err := <-got; err == nil || !strings.Contains(err.Error(), "STATE_NOT_FOUND") {
		t.Fatalf("unknown link: %v", err)
	}

	// A child rekey with PFS whose IKE_FOLLOWUP_KE is lost, every try.
	for _, s := range []*side{p.a, p.b} {
		s.d.mu.Lock()
		s.d.tunnels["t1"].cfg.PFSGroup = 19
		s.d.mu.Unlock()
	}
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		if h, _ := ParseHeader(msg); h.Exchange == IKEFollowupKE && !h.IsResponse() {
			return nil
		}
		return msg
	})
	p.a.d.Expire(p.a.inst.Calls()[1].ID, false)
	b := onlyIKESA(t, p.b)
	waitFor(t, "B's follow-up state", func() bool {
		b.lock()
		defer b.mu.Unlock()
		return len(b.followups) == 1
	})
	p.advance(t, followupWait+time.Second)
	b.lock()
	n := len(b.followups)
	b.mu.Unlock()
	if n != 0 || len(p.b.inst.Calls()) != 2 {
		t.Fatalf("B kept %d follow-up states, installer calls %v", n, p.b.inst.Calls())
	}
}
