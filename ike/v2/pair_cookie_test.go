package v2

import (
	"crypto/rand"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
)

// Cookies (§2.6) and INVALID_IKE_SPI (§2.21.4) between two daemons, and
// against a raw sender: a test that hands crafted datagrams to a daemon
// and reads its answers at an address of its own on the wire.

// capture records what the wire delivers to an address.
type capture struct {
	mu   sync.Mutex
	msgs []*Message
}

func (c *capture) Receive(local, remote netip.AddrPort, msg []byte) {
	m, err := ParseMessage(msg)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
}

func (c *capture) all() []*Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Message(nil), c.msgs...)
}

// rawInit crafts an IKE_SA_INIT request (group 14) with the given SPI,
// nonce and, when set, a cookie first.
func rawInit(t *testing.T, d *Daemon, group int, spi uint64, ni, cookie []byte) []byte {
	t.Helper()
	g, _ := ike.LookupGroup(group)
	kex, err := g.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	defer kex.Zero()
	var ps []Payload
	if cookie != nil {
		ps = append(ps, notifyPayload(Cookie, cookie))
	}
	ps = append(ps, Payload{Type: PayloadSA, Body: ikeProposals(d.cfg.suites).marshal()},
		Payload{Type: PayloadKE, Body: (&KE{Group: uint16(group), Data: kex.Public}).marshal()},
		Payload{Type: PayloadNonce, Body: ni})
	h := Header{SPIi: spi, Version: Version, Exchange: IKESAInit, Flags: FlagInitiator}
	return (&Message{Header: h, Payloads: ps}).Marshal()
}

func threshold(n int) *int { return &n }

// cookiePair is a pair whose responder B has the given cookie threshold,
// and tunnel t1 from A.
func cookiePair(t *testing.T, thr int, polA []ike.Policy, polB []ike.Policy) *pair {
	t.Helper()
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk, polA...), pairConfig(clk, polB...)
	cb.CookieThreshold = threshold(thr)
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	return newPair(t, clk, ca, cb)
}

// TestPairCookieAlways: with a threshold of 0 the responder demands a
// cookie of every IKE_SA_INIT; the initiator retries with it first and
// the SA comes up; both ends count it, and both IKE SAs show it.
func TestPairCookieAlways(t *testing.T) {
	p := cookiePair(t, 0, nil, nil)
	var inits []*Message
	var mu sync.Mutex
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		if m, err := ParseMessage(msg); err == nil && m.Exchange == IKESAInit && !m.IsResponse() {
			mu.Lock()
			inits = append(inits, m)
			mu.Unlock()
		}
		return msg
	})
	p.up(t, "t1")
	checkKeysMatch(t, p.a, p.b, "t1", "t1")
	a, b := p.a.d.Status(), p.b.d.Status()
	if b.Counters.CookiesSent != 1 || a.Counters.CookiesReceived != 1 || b.Counters.CookiesRefused != 0 {
		t.Fatalf("cookies sent %d, received %d, refused %d", b.Counters.CookiesSent, a.Counters.CookiesReceived, b.Counters.CookiesRefused)
	}
	if a.IKESAs[0].Cookies != 1 || b.IKESAs[0].Cookies != 1 {
		t.Fatalf("IKE SA cookies: %d/%d", a.IKESAs[0].Cookies, b.IKESAs[0].Cookies)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(inits) != 2 {
		t.Fatalf("%d IKE_SA_INIT requests", len(inits))
	}
	if _, ok := inits[0].Notify(Cookie); ok {
		t.Fatal("the first request has a cookie")
	}
	if inits[1].Payloads[0].Type != PayloadNotify || inits[1].MessageID != 0 {
		t.Fatal("the retry does not start with the cookie")
	}
	n1, _ := inits[0].Get(PayloadNonce)
	n2, _ := inits[1].Get(PayloadNonce)
	if string(n1.Body) != string(n2.Body) || len(inits[1].Payloads) != len(inits[0].Payloads)+1 {
		t.Fatal("the retry changed more than the cookie")
	}
}

// TestPairCookieInvalidKE: §2.6.1's sequence in one exchange: the
// responder wants a cookie, then another group; the third request carries
// the same cookie, the responder's group and the same nonce, and is taken.
func TestPairCookieInvalidKE(t *testing.T) {
	p14 := ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14}
	p19 := ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 19}
	p := cookiePair(t, 0, []ike.Policy{p14, p19}, []ike.Policy{p19})
	var inits []*Message
	var mu sync.Mutex
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		if m, err := ParseMessage(msg); err == nil && m.Exchange == IKESAInit {
			mu.Lock()
			inits = append(inits, m)
			mu.Unlock()
		}
		return msg
	})
	p.up(t, "t1")
	mu.Lock()
	defer mu.Unlock()
	var seq []string
	for _, m := range inits {
		var ke KE
		_, _ = m.decode(PayloadKE, &ke)
		_, hasCookie := m.Notify(Cookie)
		switch {
		case m.IsResponse() && hasCookie:
			seq = append(seq, "N(COOKIE)")
		case m.IsResponse() && peerError(m) != nil:
			seq = append(seq, peerError(m).Type.String())
		case m.IsResponse():
			seq = append(seq, "SAr1")
		case hasCookie && m.Payloads[0].Type == PayloadNotify:
			seq = append(seq, "cookie+KE"+strconv.Itoa(int(ke.Group)))
		default:
			seq = append(seq, "KE"+strconv.Itoa(int(ke.Group)))
		}
	}
	want := "KE14 N(COOKIE) cookie+KE14 INVALID_KE_PAYLOAD cookie+KE19 SAr1"
	if got := strings.Join(seq, " "); got != want {
		t.Fatalf("IKE_SA_INIT sequence %q, want %q", got, want)
	}
	b := p.b.d.Status().Counters
	if b.CookiesSent != 1 || b.CookiesRefused != 0 || b.InvalidKE != 1 || p.a.d.Status().Counters.InvalidKE != 1 {
		t.Fatalf("counters: %+v", b)
	}
}

// TestPairCookieThreshold: below the threshold a responder answers
// IKE_SA_INIT at once; a flood of requests from a raw sender fills the
// half-open SAs up to the threshold and every further request gets a
// cookie and leaves no state; a real initiator still gets in, with a
// cookie; when the half-open SAs time out, cookies stop.
func TestPairCookieThreshold(t *testing.T) {
	const thr = 4
	p := cookiePair(t, thr, nil, nil)
	flood := &capture{}
	addrX := netip.MustParseAddr("192.0.2.66")
	p.w.Attach(addrX, flood)
	ni := make([]byte, 32)
	for i := range 40 {
		_, _ = rand.Read(ni)
		p.b.d.Receive(netip.AddrPortFrom(addrB, 500), netip.AddrPortFrom(addrX, 500), rawInit(t, p.b.d, 14, uint64(i+1), ni, nil))
	}
	st := p.b.d.Status()
	if len(st.IKESAs) != thr || st.Counters.CookiesSent != 40-thr {
		t.Fatalf("after the flood: %d IKE SAs, %d cookies sent", len(st.IKESAs), st.Counters.CookiesSent)
	}
	waitFor(t, "the answers", func() bool { return len(flood.all()) == 40 })
	cookies := 0
	for _, m := range flood.all() {
		if _, ok := m.Notify(Cookie); ok && m.SPIr == 0 && len(m.Payloads) == 1 {
			cookies++
		}
	}
	if cookies != 40-thr {
		t.Fatalf("%d cookie answers", cookies)
	}
	p.up(t, "t1")
	if n := p.a.d.Status().Counters.CookiesReceived; n != 1 {
		t.Fatalf("the real initiator got %d cookies", n)
	}
	// The half-open SAs time out (30 s); then no cookie is needed.
	p.advance(t, 31*time.Second)
	if n := len(p.b.d.Status().IKESAs); n != 1 {
		t.Fatalf("%d IKE SAs after the half-open ones timed out", n)
	}
	before := p.b.d.Status().Counters.CookiesSent
	_, _ = rand.Read(ni)
	p.b.d.Receive(netip.AddrPortFrom(addrB, 500), netip.AddrPortFrom(addrX, 500), rawInit(t, p.b.d, 14, 99, ni, nil))
	if p.b.d.Status().Counters.CookiesSent != before {
		t.Fatal("a cookie below the threshold")
	}
}

// TestPairCookieRotation: the cookie secret changes every two minutes; a
// cookie of the previous secret is taken for ten seconds after the
// change, then refused with a new cookie of the new secret.
func TestPairCookieRotation(t *testing.T) {
	p := cookiePair(t, 0, nil, nil)
	got := &capture{}
	addrX := netip.MustParseAddr("192.0.2.66")
	p.w.Attach(addrX, got)
	from := netip.AddrPortFrom(addrX, 500)
	to := netip.AddrPortFrom(addrB, 500)
	ni1, ni2 := make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(ni1)
	_, _ = rand.Read(ni2)
	cookieOf := func(n int) []byte {
		waitFor(t, "an answer", func() bool { return len(got.all()) >= n })
		c, ok := got.all()[n-1].Notify(Cookie)
		if !ok {
			t.Fatalf("answer %d has no cookie", n)
		}
		return c.Data
	}
	p.b.d.Receive(to, from, rawInit(t, p.b.d, 14, 1, ni1, nil))
	c1 := cookieOf(1)
	p.b.d.Receive(to, from, rawInit(t, p.b.d, 14, 2, ni2, nil))
	c2 := cookieOf(2)
	if c1[0] != c2[0] {
		t.Fatal("two versions within one secret's time")
	}
	p.clk.Advance(2*time.Minute + time.Second)
	p.b.d.Receive(to, from, rawInit(t, p.b.d, 14, 1, ni1, c1)) // rotates; c1 is of the previous secret
	if st := p.b.d.Status(); len(st.IKESAs) != 1 || st.Counters.CookiesRefused != 0 {
		t.Fatalf("a cookie of the previous secret within its grace: %d IKE SAs, %d refused", len(st.IKESAs), st.Counters.CookiesRefused)
	}
	p.clk.Advance(11 * time.Second)
	p.b.d.Receive(to, from, rawInit(t, p.b.d, 14, 2, ni2, c2))
	st := p.b.d.Status()
	if len(st.IKESAs) != 1 || st.Counters.CookiesRefused != 1 {
		t.Fatalf("a stale cookie: %d IKE SAs, %d refused", len(st.IKESAs), st.Counters.CookiesRefused)
	}
	if c3 := cookieOf(4); c3[0] != c1[0]+1 {
		t.Fatalf("the new cookie's version is %d, want %d", c3[0], c1[0]+1)
	}
	// A wrong cookie of the current version is refused too.
	bad := cookieOf(4)
	bad[5] ^= 1
	p.b.d.Receive(to, from, rawInit(t, p.b.d, 14, 2, ni2, bad))
	if st := p.b.d.Status(); len(st.IKESAs) != 1 || st.Counters.CookiesRefused != 2 {
		t.Fatalf("a forged cookie: %d IKE SAs, %d refused", len(st.IKESAs), st.Counters.CookiesRefused)
	}
}

// TestPairInvalidIKESPI: a request for an IKE SA the responder lost is
// answered in the clear with INVALID_IKE_SPI, the SPIs and message ID
// copied; the peer's SA is not touched by it; a flood is rate-limited.
func TestPairInvalidIKESPI(t *testing.T) {
	p := cookiePair(t, 10, nil, nil)
	p.up(t, "t1")
	sa := onlyIKESA(t, p.b)
	sa.lock()
	sa.destroy("lost in a restart") // B forgets without a word
	sa.unlock()
	var answers []*Message
	var mu sync.Mutex
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		if m, err := ParseMessage(msg); err == nil && local.Addr() == addrB {
			mu.Lock()
			answers = append(answers, m)
			mu.Unlock()
		}
		return msg
	})
	asa := onlyIKESA(t, p.a)
	asa.lock()
	asa.request(&request{exchange: Informational, build: func(*ikeSA) ([]Payload, error) { return nil, nil },
		onResponse: func(*ikeSA, *Message) {}})
	spiI, spiR, id := asa.spiI, asa.spiR, asa.win.out.msgID
	asa.unlock()
	waitFor(t, "INVALID_IKE_SPI", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(answers) > 0
	})
	mu.Lock()
	m := answers[0]
	mu.Unlock()
	n, ok := m.Notify(InvalidIKESPI)
	if !ok || !m.IsResponse() || m.SPIi != spiI || m.SPIr != spiR || m.MessageID != id || m.Exchange != Informational ||
		len(m.Payloads) != 1 || n.Type != InvalidIKESPI {
		t.Fatalf("answer %+v", m.Header)
	}
	waitFor(t, "A drops the notify", func() bool {
		c := p.a.d.Status().Counters
		return c.Dropped+c.Malformed > 0
	})
	if st := p.a.d.Status(); len(st.IKESAs) != 1 || !st.IKESAs[0].Established {
		t.Fatalf("the unauthenticated notify changed A's SA: %+v", st.IKESAs)
	}
	// A flood of requests with unknown SPIs: at most the burst now, the
	// rate a second later.
	from, to := netip.AddrPortFrom(addrA, 500), netip.AddrPortFrom(addrB, 500)
	sent := p.b.d.Status().Counters.InvalidIKESPISent
	for i := range 50 {
		h := Header{SPIi: uint64(1000 + i), SPIr: 7, Version: Version, Exchange: Informational, Flags: FlagInitiator, MessageID: 3}
		p.b.d.Receive(to, from, (&Message{Header: h}).Marshal())
	}
	c := p.b.d.Status().Counters
	if c.InvalidIKESPISent-sent > invalidSPIBurst || c.InvalidIKESPILimited < 50-invalidSPIBurst {
		t.Fatalf("flood: %d sent, %d limited", c.InvalidIKESPISent-sent, c.InvalidIKESPILimited)
	}
	p.clk.Advance(time.Second)
	sent = c.InvalidIKESPISent
	for i := range 20 {
		h := Header{SPIi: uint64(2000 + i), SPIr: 7, Version: Version, Exchange: Informational, Flags: FlagInitiator}
		p.b.d.Receive(to, from, (&Message{Header: h}).Marshal())
	}
	if n := p.b.d.Status().Counters.InvalidIKESPISent - sent; n != invalidSPIRate {
		t.Fatalf("%d sent a second later, want %d", n, invalidSPIRate)
	}
	// A response for an unknown SA is never answered.
	sent = p.b.d.Status().Counters.InvalidIKESPISent
	p.clk.Advance(time.Second)
	h := Header{SPIi: 5, SPIr: 6, Version: Version, Exchange: Informational, Flags: FlagResponse}
	p.b.d.Receive(to, from, (&Message{Header: h}).Marshal())
	if p.b.d.Status().Counters.InvalidIKESPISent != sent {
		t.Fatal("a response was answered")
	}
}
