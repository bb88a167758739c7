package v2

import (
	"crypto/rand"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
)

// rekeyPair is a pair with one tunnel up and the given IKE lifetimes.
func rekeyPair(t *testing.T, lifeA, lifeB time.Duration, randA, randB *prefixReader) *pair {
	t.Helper()
	clk := clocktest.New(t0)
	pol := func(l time.Duration) ike.Policy {
		return ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14, Lifetime: l}
	}
	ca, cb := pairConfig(clk, pol(lifeA)), pairConfig(clk, pol(lifeB))
	if randA != nil {
		ca.Rand = randA
	}
	if randB != nil {
		cb.Rand = randB
	}
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")
	tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")
	ta.Lifetime, tb.Lifetime = ipsec.Lifetime{Time: 10 * time.Hour}, ipsec.Lifetime{Time: 10 * time.Hour}
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	return p
}

// checkIKERekeyed checks that each side has exactly one established IKE
// SA, with the same SPIs, not the old ones, rekeyed n times; that the
// installers saw nothing but the first child SA pair; and that the
// tunnel's child SAs work over the new IKE SA (a child rekey).
func checkIKERekeyed(t *testing.T, p *pair, old ike.IKESAStatus, n int) {
	t.Helper()
	waitFor(t, "one IKE SA each", func() bool {
		return len(p.a.d.Status().IKESAs) == 1 && len(p.b.d.Status().IKESAs) == 1
	})
	a, b := p.a.d.Status().IKESAs[0], p.b.d.Status().IKESAs[0]
	if !a.Established || !b.Established || a.ICookie != b.ICookie || a.RCookie != b.RCookie {
		t.Fatalf("IKE SAs after the rekey: %+v / %+v", a, b)
	}
	if a.ICookie == old.ICookie || a.RCookie == old.RCookie || a.RCookie == old.ICookie || a.ICookie == old.RCookie {
		t.Fatalf("the new IKE SA reuses an old SPI: %s/%s, old %s/%s", a.ICookie, a.RCookie, old.ICookie, old.RCookie)
	}
	if a.Rekeys != n || b.Rekeys != n {
		t.Fatalf("rekeys %d/%d, want %d", a.Rekeys, b.Rekeys, n)
	}
	for _, s := range []*side{p.a, p.b} {
		if calls := s.inst.Calls(); len(calls) != 2 {
			t.Fatalf("the installer saw %v: an IKE SA rekey must not touch the child SAs", calls)
		}
		if countEvents(s.lis, "down", "t1") != 0 {
			t.Fatal("the tunnel went down")
		}
	}
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
	// The children live on the new IKE SA: a child rekey runs there.
	id := p.a.inst.Calls()[1].ID
	p.a.d.Expire(id, false)
	waitFor(t, "a child rekey on the new IKE SA", func() bool { return len(p.b.inst.Calls()) >= 6 && p.a.idle() && p.b.idle() })
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
}

// TestPairIKERekeyByTime: the IKE SA is rekeyed at 80–90 % of the policy
// lifetime of the side with the shorter one, A (the original initiator)
// or B (the original responder); make before break, the old IKE SA gone
// on both sides, the child SAs untouched; and again on the next one.
func TestPairIKERekeyByTime(t *testing.T) {
	for _, c := range []struct {
		name         string
		lifeA, lifeB time.Duration
	}{{"InitiatorRekeys", time.Hour, 4 * time.Hour}, {"ResponderRekeys", 4 * time.Hour, time.Hour}} {
		t.Run(c.name, func(t *testing.T) {
			p := rekeyPair(t, c.lifeA, c.lifeB, nil, nil)
			old := p.a.d.Status().IKESAs[0]
			p.advance(t, 55*time.Minute)
			checkIKERekeyed(t, p, old, 1)
			st := p.a.d.Status()
			if st.Counters.IKESARekeys != 1 || p.b.d.Status().Counters.IKESARekeys != 1 {
				t.Fatalf("IKE SA rekeys counted: %d/%d", st.Counters.IKESARekeys, p.b.d.Status().Counters.IKESARekeys)
			}
			rekeyer := p.a
			if c.lifeB < c.lifeA {
				rekeyer = p.b
			}
			if !rekeyer.d.Status().IKESAs[0].Initiator {
				t.Errorf("the end that rekeyed is not the initiator of the new IKE SA")
			}
			// The next rekey, on the new SA's own timer.
			old = p.a.d.Status().IKESAs[0]
			p.advance(t, 55*time.Minute)
			waitFor(t, "a second IKE SA rekey", func() bool {
				s := p.a.d.Status().IKESAs
				return len(s) == 1 && s[0].Rekeys == 2
			})
			if got := p.a.d.Status().IKESAs[0]; got.ICookie == old.ICookie {
				t.Fatalf("no second rekey: %+v", got)
			}
		})
	}
}

// prefixReader is a random source whose every read starts with a byte
// from next: the first octet of each nonce (and SPI and key) this end
// draws, so that a test orders the nonces of a collision (§2.8.1).
type prefixReader struct {
	mu   sync.Mutex
	next func() byte
}

func (r *prefixReader) Read(b []byte) (int, error) {
	if _, err := rand.Read(b); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(b) > 0 {
		b[0] = r.next()
	}
	return len(b), nil
}

// counting returns a reader whose prefixes count from start by step.
func counting(start byte, step int) *prefixReader {
	v := int(start)
	return &prefixReader{next: func() byte {
		b := byte(v)
		if v+step >= 1 && v+step <= 254 {
			v += step
		}
		return b
	}}
}

// collide starts the same rekey on both sides while the wire holds every
// datagram, then hands the two requests to the daemons, then the two
// responses: each side's request reaches the other while its own is out.
// With unnoticed set, A's exchange completes before B's request reaches
// A instead (A never sees the collision).
func collide(t *testing.T, p *pair, unnoticed bool, start func(s *side)) {
	t.Helper()
	var mu sync.Mutex
	type dgram struct {
		local, remote netip.AddrPort
		msg           []byte
	}
	var held []dgram
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		held = append(held, dgram{local, remote, msg})
		return nil
	})
	start(p.a)
	start(p.b)
	take := func() dgram {
		waitFor(t, "a datagram", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(held) > 0
		})
		mu.Lock()
		defer mu.Unlock()
		d := held[0]
		held = held[1:]
		return d
	}
	deliver := func(d dgram) {
		to := p.a
		if d.remote.Addr() == addrB {
			to = p.b
		}
		to.d.Receive(d.remote, d.local, d.msg)
	}
	reqA, reqB := take(), take()
	if reqA.local.Addr() != addrA {
		reqA, reqB = reqB, reqA
	}
	if unnoticed {
		deliver(reqA)   // B answers A's request while its own is out
		deliver(take()) // A gets its answer: done before B's request comes
		deliver(reqB)   // A answers TEMPORARY_FAILURE
	} else {
		deliver(reqA)
		deliver(reqB)
		deliver(take())
		deliver(take())
	}
	p.w.SetFilter(nil)
	mu.Lock()
	rest := held
	held = nil
	mu.Unlock()
	for _, d := range rest {
		_ = p.w.Send(d.local, d.remote, d.msg)
	}
	waitFor(t, "both sides idle", func() bool { return p.a.idle() && p.b.idle() })
}

// TestPairIKERekeyCollision: both ends rekey the IKE SA at once, A's
// nonces lower than B's (so that one of A's two nonces is the lowest),
// and ordered so that the lowest is in A's exchange or in B's: the new SA
// with the lowest nonce is deleted by its creator, the other inherits
// the child SAs on both sides, the same one, and nothing of the data path
// moves.
func TestPairIKERekeyCollision(t *testing.T) {
	for _, c := range []struct {
		name      string
		randA     *prefixReader
		unnoticed bool
		aWins     bool // A's exchange keeps its new SA
	}{
		// A draws its request's nonce before its response's: counting up,
		// the lowest nonce is in A's exchange, which loses.
		{"LowestInAsExchange", counting(0x01, 1), false, false},
		{"LowestInBsExchange", counting(0xe0, -1), false, true},
		// A finishes first: B gets TEMPORARY_FAILURE (or the Delete of
		// the old SA) and takes A's new SA whatever the nonces.
		{"Unnoticed", counting(0x01, 1), true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := rekeyPair(t, 24*time.Hour, 24*time.Hour, c.randA, counting(0xf8, 0))
			old := p.a.d.Status().IKESAs[0]
			collide(t, p, c.unnoticed, func(s *side) {
				sa := onlyIKESA(t, s)
				sa.lock()
				sa.rekeyIKE()
				sa.unlock()
			})
			checkIKERekeyed(t, p, old, 1)
			st := p.a.d.Status().IKESAs[0]
			// A's exchange made the SA whose initiator SPI A chose.
			aKept := st.Initiator
			if aKept != c.aWins {
				t.Fatalf("A's new IKE SA kept: %v, want %v (%+v)", aKept, c.aWins, st)
			}
			checkCollisionCounters(t, p, c.unnoticed)
		})
	}
}

// onlyIKESA returns the side's one IKE SA.
func onlyIKESA(t *testing.T, s *side) *ikeSA {
	t.Helper()
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if len(s.d.sas) != 1 {
		t.Fatalf("%d IKE SAs", len(s.d.sas))
	}
	for _, sa := range s.d.sas {
		return sa
	}
	return nil
}

// TestPairChildRekeyCollision: both ends rekey the child SA at once
// (§2.8.1), with the lowest nonce in A's exchange or in B's: one new pair
// survives, the same on both sides, installed on each before the old pair
// is deleted; the loser is gone from both installers, and the tunnel
// never goes down.
func TestPairChildRekeyCollision(t *testing.T) {
	for _, c := range []struct {
		name      string
		randA     *prefixReader
		unnoticed bool
		aWins     bool
	}{{"LowestInAsExchange", counting(0x01, 1), false, false}, {"LowestInBsExchange", counting(0xe0, -1), false, true},
		{"Unnoticed", counting(0x01, 1), true, true}} {
		t.Run(c.name, func(t *testing.T) {
			p := rekeyPair(t, 24*time.Hour, 24*time.Hour, c.randA, counting(0xf8, 0))
			oldA, oldB := p.a.inst.Calls(), p.b.inst.Calls()
			collide(t, p, c.unnoticed, func(s *side) { s.d.Expire(s.inst.Calls()[1].ID, false) })
			waitFor(t, "one SA pair each", func() bool {
				ai, ao, _ := p.a.inst.Tunnel("t1")
				bi, bo, _ := p.b.inst.Tunnel("t1")
				return len(ai) == 1 && len(ao) == 1 && len(bi) == 1 && len(bo) == 1 && p.a.idle() && p.b.idle()
			})
			checkKeysMatch(t, p.a, p.b, "t1", "t1")
			for i, s := range []*side{p.a, p.b} {
				old := [][]iketest.Call{oldA, oldB}[i]
				calls := s.inst.Calls()
				live := s.inst.SAs()
				addAt := map[ipsec.SAID]int{}
				delAt := map[ipsec.SAID]int{}
				for j, call := range calls {
					if call.Op == "add" {
						addAt[call.ID] = j
					} else {
						delAt[call.ID] = j
					}
				}
				for _, o := range old {
					if _, gone := delAt[o.ID]; !gone {
						t.Fatalf("side %d: the old SA %v is still installed", i, o.ID)
					}
					for id := range live {
						if addAt[id] > delAt[o.ID] {
							t.Fatalf("side %d: the surviving SA %v came after the old %v went: %v", i, id, o.ID, calls)
						}
					}
				}
				if countEvents(s.lis, "down", "t1") != 0 {
					t.Fatalf("side %d: the tunnel went down", i)
				}
			}
			checkCollisionCounters(t, p, c.unnoticed)
			// A's exchange made the pair whose inbound SPI on A A
			// allocated in its request: A's inbound SA was added in A's
			// exchange before B's (A allocates SPIs from 0x1000 up,
			// its request's first).
			var aIn ipsec.SAID
			for id, sa := range p.a.inst.SAs() {
				if sa.Inbound {
					aIn = id
				}
			}
			aKept := aIn.SPI == 0x1002
			if aKept != c.aWins {
				t.Fatalf("A's new child kept: %v (inbound SPI %08x), want %v; calls %v", aKept, aIn.SPI, c.aWins, p.a.inst.Calls())
			}
		})
	}
}

// checkCollisionCounters: each side that saw the collision counted it;
// unnoticed, only B did, and A answered TEMPORARY_FAILURE (which B may
// never read: A's Delete of the old SA comes first).
func checkCollisionCounters(t *testing.T, p *pair, unnoticed bool) {
	t.Helper()
	a, b := p.a.d.Status().Counters, p.b.d.Status().Counters
	wantA := uint64(1)
	if unnoticed {
		wantA = 0
		if a.TemporaryFailures != 1 {
			t.Errorf("TEMPORARY_FAILURE sent %d", a.TemporaryFailures)
		}
	}
	if a.RekeyCollisions != wantA || b.RekeyCollisions != 1 {
		t.Errorf("collisions counted: A %d (want %d), B %d (want 1)", a.RekeyCollisions, wantA, b.RekeyCollisions)
	}
}
