package offload_test

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

var (
	v4a, v4b = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	v6a, v6b = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	in4a     = netip.MustParseAddr("198.51.100.1")
	in4b     = netip.MustParseAddr("203.0.113.1")
	in6a     = netip.MustParseAddr("2001:db8:1::1")
	in6b     = netip.MustParseAddr("2001:db8:2::1")
)

// side is one gateway: an engine, its processor and the events it posted.
type side struct {
	e    *offload.Engine
	p    *offload.Processor
	mu   sync.Mutex
	evs  []offload.Event
	sa   *offload.SA
	keys [2]ipsec.Key
}

func (s *side) events() []offload.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]offload.Event(nil), s.evs...)
}

func newSide(t testing.TB, drivers ...driver.Driver) *side {
	s := &side{}
	fb := fallback.New(1)
	t.Cleanup(func() { fb.Close() })
	e, err := offload.New(offload.Config{Fallback: fb, Drivers: drivers, Notify: func(ev offload.Event) {
		s.mu.Lock()
		s.evs = append(s.evs, ev)
		s.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	s.e, s.p = e, e.NewProcessor()
	return s
}

// keysFor returns deterministic keys of the right lengths for tr.
func keysFor(tr transform.Transform, seed byte) (ipsec.Key, ipsec.Key) {
	ck := make(ipsec.Key, tr.CipherKeyLen())
	ak := make(ipsec.Key, tr.AuthKeyLen())
	for i := range ck {
		ck[i] = seed + byte(i)*7
	}
	for i := range ak {
		ak[i] = seed ^ byte(i)*13
	}
	return ck, ak
}

type pairOpts struct {
	mode   ipsec.Mode
	v6     bool
	udp    bool
	esn    bool
	window int
	life   ipsec.Limits
}

// pair makes an outbound SA on a and the matching inbound SA on b.
func pair(t testing.TB, tr transform.Transform, o pairOpts, a, b *side) {
	t.Helper()
	src, dst := v4a, v4b
	if o.v6 {
		src, dst = v6a, v6b
	}
	ck, ak := keysFor(tr, 0x42)
	c := offload.SAConfig{SPI: 0x1000, Transform: tr, Mode: o.mode, Src: src, Dst: dst, UDPEncap: o.udp,
		CipherKey: ck, AuthKey: ak, ESN: o.esn, ReplayWindow: o.window, Limits: o.life}
	c.Direction = ipsec.Outbound
	var err error
	if a.sa, err = a.e.AddSA(c); err != nil {
		t.Fatal(err)
	}
	c.Direction = ipsec.Inbound
	if b.sa, err = b.e.AddSA(c); err != nil {
		t.Fatal(err)
	}
	a.keys, b.keys = [2]ipsec.Key{ck, ak}, [2]ipsec.Key{ck, ak}
}

// inner returns a UDP packet suitable for o's mode and family.
func inner(o pairOpts, n int, seed byte) []byte {
	src, dst := in4a, in4b
	switch {
	case o.v6 && o.mode == ipsec.Transport:
		src, dst = v6a, v6b
	case o.v6:
		src, dst = in6a, in6b
	case o.mode == ipsec.Transport:
		src, dst = v4a, v4b
	}
	return testpkt.UDP(src, dst, 1000, 2000, n, seed)
}

func packet(b []byte) *offload.Packet {
	pk := offload.NewPacket()
	pk.Reset(len(b))
	copy(pk.Buf.Bytes(), b)
	return pk
}

// encap runs one packet through a's outbound SA.
func encap(t testing.TB, a *side, b []byte) []byte {
	t.Helper()
	pk := packet(b)
	pk.SA = a.sa
	a.p.Encap([]*offload.Packet{pk})
	if pk.Drop != offload.NotDropped {
		t.Fatalf("encap dropped: %v", pk.Drop)
	}
	return bytes.Clone(pk.Buf.Bytes())
}

// decap runs one outer packet through b and returns the result and drop.
func decap(b *side, wire []byte) ([]byte, offload.DropReason) {
	pk := packet(wire)
	b.p.Decap([]*offload.Packet{pk})
	if pk.Drop != offload.NotDropped {
		return nil, pk.Drop
	}
	return bytes.Clone(pk.Buf.Bytes()), offload.NotDropped
}
