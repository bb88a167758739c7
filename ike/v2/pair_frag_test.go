package v2

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/swantest"
)

// bigChain returns certificates whose IKE_AUTH needs fragments: an RSA
// leaf with many long subjectAltNames under two intermediate CAs.
func bigChain(t *testing.T, root *swantest.CA, id ike.Identity) *ike.Certificates {
	inter := root.Intermediate(t, "pair intermediate 1", rsa2048, swantest.Around(t0)).
		Intermediate(t, "pair intermediate 2", rsa2048, swantest.Around(t0))
	names := []string{id.Name}
	for i := 0; i < 20; i++ {
		names = append(names, fmt.Sprintf("a-rather-long-alternative-name-number-%02d.%s", i, id.Name))
	}
	c, k := inter.Issue(t, swantest.LeafSpec{CommonName: id.Name, DNSNames: names, Key: rsa2048, Validity: swantest.Around(t0)})
	return &ike.Certificates{Chain: inter.Chain(c), Key: k}
}

// fragPair is a pair authenticating with big chains, fragmenting at mtu.
func fragPair(t *testing.T, mtu int, retrans ike.Retransmit) *pair {
	root := newRoot(t, "pair root")
	clk := clocktest.New(t0)
	ca, cb := certConfig(clk, bigChain(t, root, idA), root), certConfig(clk, bigChain(t, root, idB), root)
	ca.FragmentMTU, cb.FragmentMTU = mtu, mtu
	if retrans.Tries > 0 {
		ca.Retransmit, cb.Retransmit = retrans, retrans
	}
	certTunnels(t, &ca, &cb, idA, idB)
	return newPair(t, clk, ca, cb)
}

// fragmentNumber returns a datagram's Fragment Number and Total
// Fragments, or 0, 0 when it is not a fragment.
func fragmentNumber(b []byte) (int, int) {
	m, err := ParseMessage(b)
	if err != nil || !isFragment(m) {
		return 0, 0
	}
	skf := m.Payloads[len(m.Payloads)-1]
	if len(skf.Body) < 4 {
		return 0, 0
	}
	return int(binary.BigEndian.Uint16(skf.Body)), int(binary.BigEndian.Uint16(skf.Body[2:]))
}

// TestPairFragmentation: a chain of three certificates with many names
// goes in fragments of at most 300 bytes each way, and the tunnel comes
// up.
func TestPairFragmentation(t *testing.T) {
	const mtu = 300
	p := fragPair(t, mtu, ike.Retransmit{})
	l := p.record()
	p.up(t, "t1")
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
	for _, from := range []netip.Addr{addrA, addrB} {
		frags := 0
		for _, b := range l.sent(from) {
			if n, _ := fragmentNumber(b); n > 0 {
				frags++
				if len(b)+28 > mtu {
					t.Errorf("%v sent a %d-byte fragment datagram", from, len(b)+28)
				}
			}
		}
		if frags < 10 {
			t.Errorf("%v sent %d fragments", from, frags)
		}
	}
	for _, s := range []*side{p.a, p.b} {
		c := s.d.Status().Counters
		if c.FragmentsSent < 10 || c.FragmentsReceived < 10 || c.FragmentsDropped != 0 {
			t.Errorf("counters %+v", c)
		}
	}
	m := exchange(t, l.decode(t, addrA, peerSK(t, p.b)), IKEAuth)
	if n := len(m.All(PayloadCERT)); n != 3 {
		t.Errorf("A sent %d certificates", n)
	}
}

// TestPairFragmentLoss: a fragment of the request and one of the response
// are lost once; the retransmitted request completes the first, and its
// fragment 1 has the response sent again (RFC 7383 §2.6.1).
func TestPairFragmentLoss(t *testing.T) {
	p := fragPair(t, 576, ike.Retransmit{})
	l := p.record()
	var mu sync.Mutex
	lost := map[string]bool{}
	l.setDrop(func(from netip.Addr, b []byte) bool {
		n, _ := fragmentNumber(b)
		key := fmt.Sprintf("%v/%d", from, n)
		mu.Lock()
		defer mu.Unlock()
		if (key == addrA.String()+"/2" || key == addrB.String()+"/3") && !lost[key] {
			lost[key] = true
			return true
		}
		return false
	})
	p.a.d.Acquire("t1")
	p.retransmitUntilUp(t, "t1")
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
	mu.Lock()
	if len(lost) != 2 {
		t.Errorf("lost %v", lost)
	}
	mu.Unlock()
	ca, cb := p.a.d.Status().Counters, p.b.d.Status().Counters
	if ca.Retransmits < 2 || cb.Duplicates < 2 {
		t.Errorf("A retransmitted %d times, B saw %d duplicates", ca.Retransmits, cb.Duplicates)
	}
}

// TestPairFragmentSmaller: a path that silently drops datagrams over 1000
// bytes, with a fragment MTU of 1500 configured. The unanswered IKE_AUTH
// goes again in fragments of 1280, then 576 bytes (RFC 7383 §2.5.2), and
// the responder answers in fragments no larger than the initiator's.
func TestPairFragmentSmaller(t *testing.T) {
	p := fragPair(t, 1500, ike.Retransmit{Timeout: time.Second, Base: 1, Tries: 6})
	l := p.record()
	l.setDrop(func(_ netip.Addr, b []byte) bool { return len(b)+28 > 1000 })
	p.a.d.Acquire("t1")
	p.retransmitUntilUp(t, "t1")
	largest := map[netip.Addr]map[int]int{addrA: {}, addrB: {}} // total fragments -> largest datagram
	for _, from := range []netip.Addr{addrA, addrB} {
		for _, b := range l.sent(from) {
			if _, total := fragmentNumber(b); total > 0 {
				largest[from][total] = max(largest[from][total], len(b)+28)
			}
		}
	}
	sizes := map[int]bool{}
	for _, size := range largest[addrA] {
		for _, mtu := range []int{1500, 1280, 576} {
			if size <= mtu && size > mtu-64 {
				sizes[mtu] = true
			}
		}
	}
	if !sizes[1500] || !sizes[1280] || !sizes[576] || len(largest[addrA]) != 3 {
		t.Errorf("A's fragment sizes by count: %v", largest[addrA])
	}
	for total, size := range largest[addrB] {
		if size > 576 {
			t.Errorf("B answered in %d fragments of up to %d bytes", total, size)
		}
	}
}

// retransmitUntilUp runs the fake clock in steps, giving the wire a
// moment after each, until both sides have the tunnel up (a minute of
// fake time at most): retransmissions happen without waiting for idle.
func (p *pair) retransmitUntilUp(t *testing.T, name string) {
	t.Helper()
	for fake := time.Duration(0); countEvents(p.a.lis, "up", name) == 0 || countEvents(p.b.lis, "up", name) == 0; fake += 200 * time.Millisecond {
		if fake > time.Minute {
			t.Fatalf("not up; A %+v B %+v", p.a.d.Status().Counters, p.b.d.Status().Counters)
		}
		p.clk.Advance(200 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
}
