package v2

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
)

// Pair tests of the post-quantum hybrid key exchange: ML-KEM-768 as an
// RFC 9370 additional key exchange in IKE_INTERMEDIATE (RFC 9242) after a
// classical IKE_SA_INIT.

// pqPolicy is an IKEv2 policy of group g with the given additional key
// exchanges.
func pqPolicy(g int, optional bool, addke ...int) ike.Policy {
	return ike.Policy{Encryption: ike.EncAES256GCM, PRF: ike.HashSHA384, Auth: ike.AuthPSK, Group: g,
		AdditionalKE: addke, AdditionalKEOptional: optional}
}

// pqPair is a pair with one tunnel t1 each way and the given policies;
// opts change both configurations.
func pqPair(t *testing.T, pa, pb ike.Policy, opts ...func(c *ike.Config)) *pair {
	t.Helper()
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk, pa), pairConfig(clk, pb)
	for _, o := range opts {
		o(&ca)
		o(&cb)
	}
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	return newPair(t, clk, ca, cb)
}

// exchangeLog records the exchange type and message ID of every message
// each way (fragments once), and whether it is a response.
type exchangeLog struct {
	mu  sync.Mutex
	got []string
}

func (l *exchangeLog) filter(local, remote netip.AddrPort, msg []byte) []byte {
	h, err := ParseHeader(msg)
	if err == nil {
		dir := "A>B"
		if local.Addr() == addrB {
			dir = "B>A"
		}
		l.mu.Lock()
		e := fmt.Sprintf("%s %v %d", dir, h.Exchange, h.MessageID)
		if h.IsResponse() {
			e += " response"
		}
		if n := len(l.got); n == 0 || l.got[n-1] != e { // a message's fragments once
			l.got = append(l.got, e)
		}
		l.mu.Unlock()
	}
	return msg
}

func (l *exchangeLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// TestPairHybridMLKEM: ECP-256 or Curve25519 in IKE_SA_INIT, ML-KEM-768
// in one IKE_INTERMEDIATE exchange (message ID 1; IKE_AUTH then has 2),
// either end initiating; AUTH covers IntAuth, the child SA keys match,
// and both ends report the additional key exchange and count the
// exchange.
func TestPairHybridMLKEM(t *testing.T) {
	for _, g := range []int{19, 31} {
		for _, aInit := range []bool{true, false} {
			t.Run(fmt.Sprintf("group%d/aInitiates=%v", g, aInit), func(t *testing.T) {
				p := pqPair(t, pqPolicy(g, false, ike.MLKEM768), pqPolicy(g, false, ike.MLKEM768))
				var log exchangeLog
				p.w.SetFilter(log.filter)
				init, resp, dir := p.a, p.b, "A>B"
				if !aInit {
					init, resp, dir = p.b, p.a, "B>A"
				}
				init.d.Acquire("t1")
				waitEvent(t, init.lis, "up", "t1")
				waitEvent(t, resp.lis, "up", "t1")
				checkKeysMatch(t, p.a, p.b, "t1", "t1")
				var reqs []string
				for _, e := range log.list() {
					if e[:3] == dir {
						reqs = append(reqs, e[4:])
					}
				}
				want := []string{"IKE_SA_INIT 0", "IKE_INTERMEDIATE 1", "IKE_AUTH 2"}
				if !slices.Equal(reqs, want) {
					t.Fatalf("initiator's requests %v, want %v", reqs, want)
				}
				for _, s := range []*side{p.a, p.b} {
					st := s.d.Status()
					sa := st.IKESAs[0]
					if !sa.Established || !slices.Equal(sa.AdditionalKE, []int{ike.MLKEM768}) || sa.Policy.Group != g {
						t.Fatalf("IKE SA: %+v", sa)
					}
					if st.Counters.IntermediateExchanges != 1 {
						t.Errorf("IKE_INTERMEDIATE exchanges counted: %d", st.Counters.IntermediateExchanges)
					}
				}
			})
		}
	}
}

// TestPairAdditionalKEFallback: against a peer whose policy has no
// additional key exchange (as a daemon without RFC 9370 support proposes
// and answers), an optional ML-KEM falls back to the classical group
// with no error, either end initiating; a required one gets
// NO_PROPOSAL_CHOSEN.
func TestPairAdditionalKEFallback(t *testing.T) {
	for _, c := range []struct {
		name     string
		optional bool
	}{{"Optional", true}, {"Required", false}} {
		for _, pqInit := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/pqInitiates=%v", c.name, pqInit), func(t *testing.T) {
				p := pqPair(t, pqPolicy(19, c.optional, ike.MLKEM768), pqPolicy(19, false))
				init, resp := p.a, p.b
				if !pqInit {
					init, resp = p.b, p.a
				}
				init.d.Acquire("t1")
				if !c.optional {
					waitEvent(t, init.lis, "failed", "t1")
					if n := resp.d.Status().Counters.NoProposalChosen; n != 1 && !pqInit {
						t.Errorf("the PQ responder counted %d NO_PROPOSAL_CHOSEN", n)
					}
					if n := init.d.Status().Counters.NoProposalChosen; n != 1 {
						t.Errorf("the initiator counted %d NO_PROPOSAL_CHOSEN", n)
					}
					if countEvents(resp.lis, "up", "t1") != 0 {
						t.Error("the tunnel came up")
					}
					return
				}
				waitEvent(t, init.lis, "up", "t1")
				waitEvent(t, resp.lis, "up", "t1")
				checkKeysMatch(t, p.a, p.b, "t1", "t1")
				for _, s := range []*side{p.a, p.b} {
					st := s.d.Status()
					if sa := st.IKESAs[0]; len(sa.AdditionalKE) != 0 || sa.Policy.Group != 19 {
						t.Fatalf("IKE SA: %+v", sa)
					}
					if st.Counters.IntermediateExchanges != 0 || st.Counters.NoProposalChosen != 0 || countEvents(s.lis, "failed", "t1") != 0 {
						t.Fatalf("a fallback with an error: %+v", st.Counters)
					}
				}
			})
		}
	}
}

// TestPairIntermediateRetransmit: B's IKE_INTERMEDIATE response is lost
// once; A sends its request again after the retransmission timeout and B,
// whose keys changed meanwhile, answers from its response cache; the SA
// comes up with matching keys.
func TestPairIntermediateRetransmit(t *testing.T) {
	p := pqPair(t, pqPolicy(31, false, ike.MLKEM768), pqPolicy(31, false, ike.MLKEM768))
	var mu sync.Mutex
	dropped := 0
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		h, _ := ParseHeader(msg)
		mu.Lock()
		defer mu.Unlock()
		if h.Exchange == IKEIntermediate && h.IsResponse() && dropped == 0 {
			dropped++
			return nil
		}
		return msg
	})
	p.a.d.Acquire("t1")
	waitFor(t, "the lost response", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return dropped == 1
	})
	p.advance(t, 1500*time.Millisecond)
	waitEvent(t, p.a.lis, "up", "t1")
	waitEvent(t, p.b.lis, "up", "t1")
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
	if st := p.b.d.Status().Counters; st.Duplicates != 1 || st.IntermediateExchanges != 1 {
		t.Fatalf("B: %d duplicates, %d IKE_INTERMEDIATE", st.Duplicates, st.IntermediateExchanges)
	}
	if st := p.a.d.Status().Counters; st.Retransmits != 1 {
		t.Fatalf("A retransmitted %d times", st.Retransmits)
	}
}

// reseal returns a filter that rewrites the KE payload of the first
// IKE_INTERMEDIATE message of the given direction (response or request)
// with edit, sealing it again with the sender's keys (as they were when
// the request passed), as an attacker who had them could.
func reseal(t *testing.T, from *side, response bool, edit func(ke *KE)) func(local, remote netip.AddrPort, msg []byte) []byte {
	var mu sync.Mutex
	var keys *skCrypto
	done := false
	return func(local, remote netip.AddrPort, msg []byte) []byte {
		m, err := ParseMessage(msg)
		if err != nil || m.Exchange != IKEIntermediate {
			return msg
		}
		mu.Lock()
		defer mu.Unlock()
		if keys == nil {
			s := onlyIKESA(t, from)
			s.lock()
			// A copy: the SA zeroes its keys when they change.
			e, a := s.keys.ei(), s.keys.ai()
			if !s.initiator {
				e, a = s.keys.er(), s.keys.ar()
			}
			keys, _ = newSKCrypto(s.suite.encr, s.suite.integ, slices.Clone(e), slices.Clone(a))
			s.mu.Unlock()
		}
		if m.IsResponse() != response || done {
			return msg
		}
		done = true
		if err := keys.openMessage(msg, m); err != nil {
			t.Errorf("reseal: %v", err)
			return msg
		}
		var ke KE
		if ok, err := m.decode(PayloadKE, &ke); !ok || err != nil {
			t.Errorf("reseal: no KE")
			return msg
		}
		edit(&ke)
		b, err := keys.seal(m.Header, []Payload{{Type: PayloadKE, Body: ke.marshal()}}, from.d.rand)
		if err != nil {
			t.Errorf("reseal: %v", err)
			return msg
		}
		return b
	}
}

// TestPairMLKEMTamperedKE: an encapsulation key or a ciphertext of the
// wrong size, or of another method, in IKE_INTERMEDIATE: the responder
// answers INVALID_SYNTAX and drops the IKE SA; the initiator drops it
// on a bad ciphertext without a word; no tunnel comes up on either side.
func TestPairMLKEMTamperedKE(t *testing.T) {
	for _, c := range []struct {
		name     string
		response bool
		edit     func(ke *KE)
	}{
		{"ShortEncapsulationKey", false, func(ke *KE) { ke.Data = ke.Data[:1183] }},
		{"LongEncapsulationKey", false, func(ke *KE) { ke.Data = append(ke.Data, 0) }},
		{"OtherMethod", false, func(ke *KE) { ke.Group = 37 }},
		{"ShortCiphertext", true, func(ke *KE) { ke.Data = ke.Data[:1087] }},
		{"LongCiphertext", true, func(ke *KE) { ke.Data = append(ke.Data, 0) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Whole messages, to rewrite (fragmentation: TestPairHybridFragmented).
			p := pqPair(t, pqPolicy(19, false, ike.MLKEM768), pqPolicy(19, false, ike.MLKEM768),
				func(c *ike.Config) { c.FragmentMTU = -1 })
			from := p.a
			if c.response {
				from = p.b
			}
			p.w.SetFilter(reseal(t, from, c.response, c.edit))
			p.a.d.Acquire("t1")
			e := waitEvent(t, p.a.lis, "failed", "t1")
			if countEvents(p.a.lis, "up", "t1")+countEvents(p.b.lis, "up", "t1") != 0 {
				t.Fatal("a tunnel came up")
			}
			if !c.response {
				if p.b.d.Status().Counters.Malformed != 1 || len(p.b.d.Status().IKESAs) != 0 {
					t.Fatalf("B kept the IKE SA or did not count the bad KE: %+v", p.b.d.Status())
				}
				if want := "INVALID_SYNTAX"; !strings.Contains(e.Reason, want) {
					t.Fatalf("A's reason %q, want %s", e.Reason, want)
				}
			}
			if len(p.a.d.Status().IKESAs) != 0 {
				t.Fatal("A kept the IKE SA")
			}
		})
	}
}

// TestPairHybridFragmented: across a 1280-byte path (IPv6's minimum) and
// a 576-byte one (IPv4's; Config.FragmentMTU, RFC 7383) no datagram is
// larger than the path allows, either end initiating: at 1280 the
// IKE_INTERMEDIATE messages fit whole with AES-GCM (the 1184-octet
// encapsulation key makes a 1277-byte datagram), at 576 the key and the
// 1088-octet ciphertext go in IKE fragments; the hybrid SA comes up with
// matching keys.
func TestPairHybridFragmented(t *testing.T) {
	for _, c := range []struct {
		mtu, fragments int // fragments: the least number of IKE_INTERMEDIATE datagrams in SKF
		aInit          bool
	}{{1280, 0, true}, {1280, 0, false}, {576, 4, true}, {576, 4, false}} {
		t.Run(fmt.Sprintf("mtu%d/aInitiates=%v", c.mtu, c.aInit), func(t *testing.T) {
			p := pqPair(t, pqPolicy(31, false, ike.MLKEM768), pqPolicy(31, false, ike.MLKEM768),
				func(cfg *ike.Config) { cfg.FragmentMTU = c.mtu })
			var mu sync.Mutex
			largest, skf := 0, 0
			p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
				mu.Lock()
				defer mu.Unlock()
				largest = max(largest, 20+8+len(msg)) // IPv4 and UDP headers
				if h, _ := ParseHeader(msg); h.Exchange == IKEIntermediate && h.Next == PayloadSKF {
					skf++
				}
				return msg
			})
			init, resp := p.a, p.b
			if !c.aInit {
				init, resp = p.b, p.a
			}
			init.d.Acquire("t1")
			waitEvent(t, init.lis, "up", "t1")
			waitEvent(t, resp.lis, "up", "t1")
			checkKeysMatch(t, p.a, p.b, "t1", "t1")
			mu.Lock()
			defer mu.Unlock()
			if largest > c.mtu || skf < c.fragments || (c.fragments == 0 && skf != 0) {
				t.Fatalf("largest datagram %d bytes, %d IKE_INTERMEDIATE fragments", largest, skf)
			}
			if st := init.d.Status(); !slices.Equal(st.IKESAs[0].AdditionalKE, []int{ike.MLKEM768}) {
				t.Fatalf("IKE SA %+v", st.IKESAs[0])
			}
		})
	}
}
