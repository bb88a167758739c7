package lookaside

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

func pfx(s string) selector.Selector { return selector.FromPrefix(netip.MustParsePrefix(s)) }

// testEngine returns an engine on the software driver, closed with the
// test.
func testEngine(tb testing.TB) *offload.Engine {
	tb.Helper()
	fb := fallback.New(1)
	e, err := offload.New(offload.Config{Fallback: fb})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close(); fb.Close() })
	return e
}

// testSA adds an SA with the given SPI and direction to e.
func testSA(tb testing.TB, e *offload.Engine, spi uint32, dir ipsec.Direction) *offload.SA {
	tb.Helper()
	gcm, _ := transform.Lookup("esp-aes128-gcm16")
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if dir == ipsec.Inbound {
		src, dst = dst, src
	}
	sa, err := e.AddSA(offload.SAConfig{SPI: spi, Transform: gcm, Direction: dir, Src: src, Dst: dst, CipherKey: make(ipsec.Key, 20)})
	if err != nil {
		tb.Fatal(err)
	}
	return sa
}

// testPath is a path with no device: what classify and the tables need.
func testPath(tb testing.TB) (*path, *offload.Engine) {
	tb.Helper()
	t := &datapath.Tunnel{Name: "t1", Signaled: true, Local: pfx("198.51.100.0/24"), Remote: pfx("203.0.113.0/24")}
	t.Routed.Store(true)
	t.MTU.Store(1400)
	p := &path{t: t}
	p.outs.Store(&outTable{})
	return p, testEngine(tb)
}

// add installs an SA entry on p as AddSA does, with the given selectors
// (nil: the tunnel's).
func (p *path) add(sa *offload.SA, local, remote selector.Set) {
	p.seq++
	e := saEntry{sa: sa, width: tunnelWidth, seq: uint64(p.seq), held: new(atomic.Bool)}
	if local != nil {
		e.setSelectors(local, remote)
	}
	if sa.Direction() == ipsec.Inbound {
		p.in = append(p.in, e)
	} else {
		p.out = append(p.out, e)
	}
	p.publish()
}

// TestOutboundChoice: a packet takes the narrowest outbound SA whose
// selectors hold it, the newest of equal ones (a rekey's); a packet no SA
// holds finds none.
func TestOutboundChoice(t *testing.T) {
	p, e := testPath(t)
	a := netip.MustParseAddr
	local := selector.Of(pfx("198.51.100.0/24"))
	narrow := testSA(t, e, 0x1001, ipsec.Outbound)
	p.add(narrow, local, selector.Of(pfx("203.0.113.0/25")))
	src := a("198.51.100.1")
	if got := p.outs.Load().pick(src, a("203.0.113.200")); got != nil {
		t.Fatalf("a packet outside the only SA's selectors took %v", got.sa)
	}
	whole := testSA(t, e, 0x1002, ipsec.Outbound)
	p.add(whole, nil, nil)
	disjoint := testSA(t, e, 0x1003, ipsec.Outbound)
	p.add(disjoint, local, selector.Set{pfx("203.0.113.192/27"), pfx("203.0.113.240/28")})
	for dst, want := range map[string]*offload.SA{"203.0.113.1": narrow, "203.0.113.200": disjoint, "203.0.113.250": disjoint, "203.0.113.130": whole} {
		if got := p.outs.Load().pick(src, a(dst)); got == nil || got.sa != want {
			t.Errorf("to %s: %v, want %v", dst, got, want)
		}
	}
	rekeyed := testSA(t, e, 0x1004, ipsec.Outbound)
	p.add(rekeyed, local, selector.Of(pfx("203.0.113.0/25")))
	if got := p.outs.Load().pick(src, a("203.0.113.1")); got.sa != rekeyed {
		t.Errorf("the newest of equal SAs is not taken: %v", got.sa)
	}
	stray := testSA(t, e, 0x1005, ipsec.Outbound)
	if err := p.DeleteSA(stray.ID()); !errors.Is(err, datapath.ErrNoSA) {
		t.Fatalf("DeleteSA of an SA the engine holds but the path never got: %v", err)
	}
}

// TestInboundSelectors: an inbound packet must be inside the selectors of
// the SA it came on; an SA with the tunnel's own takes any packet of the
// tunnel, and a path without narrowed inbound SAs has no table at all.
func TestInboundSelectors(t *testing.T) {
	p, e := testPath(t)
	a := netip.MustParseAddr
	whole := testSA(t, e, 0x2001, ipsec.Inbound)
	p.add(whole, nil, nil)
	if p.ins.Load() != nil {
		t.Fatal("an inbound table without narrowed SAs")
	}
	narrow := testSA(t, e, 0x2002, ipsec.Inbound)
	p.add(narrow, selector.Of(pfx("198.51.100.0/24")), selector.Of(pfx("203.0.113.0/25")))
	ins := p.ins.Load()
	dst := a("198.51.100.1")
	for _, c := range []struct {
		sa   *offload.SA
		src  string
		want bool
	}{{narrow, "203.0.113.1", true}, {narrow, "203.0.113.129", false}, {whole, "203.0.113.129", true}} {
		if got := ins.admits(c.sa, a(c.src), dst); got != c.want {
			t.Errorf("SA %v, from %s: admitted %v", c.sa, c.src, got)
		}
	}
}

// TestClassify: the tunnel's checks come first, then the SA choice; no SA
// covering the packet is no-sa.
func TestClassify(t *testing.T) {
	p, e := testPath(t)
	f := &fib{}
	f.byDst.add(netip.MustParsePrefix("203.0.113.0/24"), p)
	a := netip.MustParseAddr
	pkt := func(dst string) []byte { return testpkt.UDP(a("198.51.100.1"), a(dst), 1, 2, 64, 0) }
	narrow := testSA(t, e, 0x3001, ipsec.Outbound)
	p.add(narrow, selector.Of(pfx("198.51.100.0/24")), selector.Of(pfx("203.0.113.0/25")))
	if _, sa, r := classify(f, pkt("203.0.113.7")); r != offload.NotDropped || sa.sa != narrow {
		t.Errorf("inside the SA: %v %v", sa, r)
	}
	if pt, _, r := classify(f, pkt("203.0.113.200")); r != offload.DropNoSA || pt != p {
		t.Errorf("outside every SA: %v", r)
	}
	if _, _, r := classify(f, testpkt.UDP(a("192.0.2.9"), a("203.0.113.7"), 1, 2, 64, 0)); r != offload.DropSelector {
		t.Errorf("outside the tunnel: %v", r)
	}
}

// BenchmarkClassify is the outbound classification of a packet: the
// tunnel lookup, its checks and the SA choice, with one SA of the
// tunnel's selectors (every manual tunnel, most signaled ones) and with
// four child SAs of their own, the packet taking the widest.
func BenchmarkClassify(b *testing.B) {
	a := netip.MustParseAddr
	for _, c := range []struct {
		name     string
		children int
	}{{"one-SA", 0}, {"four-children", 4}} {
		b.Run(c.name, func(b *testing.B) {
			p, e := testPath(b)
			f := &fib{}
			f.byDst.add(netip.MustParsePrefix("203.0.113.0/24"), p)
			local := selector.Of(pfx("198.51.100.0/24"))
			for i := range c.children {
				remote := selector.Of(selector.FromPrefix(netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(32 * i)}), 27)))
				p.add(testSA(b, e, 0x4000+uint32(i), ipsec.Outbound), local, remote)
			}
			p.add(testSA(b, e, 0x4100, ipsec.Outbound), nil, nil)
			pkt := testpkt.UDP(a("198.51.100.1"), a("203.0.113.200"), 1, 2, 1400-28, 0)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, sa, r := classify(f, pkt); r != offload.NotDropped || sa == nil {
					b.Fatal(r)
				}
			}
		})
	}
}

// TestCovers: an SA's selectors hold a packet the same way whether they
// are IPv4 (compared as integers), IPv6 or both.
func TestCovers(t *testing.T) {
	a := netip.MustParseAddr
	for _, c := range []struct {
		local, remote selector.Set
		src, dst      string
		want          bool
	}{
		{selector.Of(pfx("198.51.100.0/24")), selector.Set{pfx("203.0.113.0/28"), pfx("203.0.113.64/28")}, "198.51.100.7", "203.0.113.70", true},
		{selector.Of(pfx("198.51.100.0/24")), selector.Set{pfx("203.0.113.0/28"), pfx("203.0.113.64/28")}, "198.51.100.7", "203.0.113.20", false},
		{selector.Of(pfx("198.51.100.0/24")), selector.Of(pfx("203.0.113.0/24")), "2001:db8::1", "203.0.113.1", false},
		{selector.Of(pfx("2001:db8:1::/48")), selector.Of(pfx("2001:db8:2::/48")), "2001:db8:1::5", "2001:db8:2::5", true},
		{selector.Of(pfx("2001:db8:1::/48")), selector.Of(pfx("2001:db8:2::/48")), "2001:db8:1::5", "2001:db8:3::5", false},
		{selector.Set{pfx("198.51.100.0/24"), pfx("2001:db8:1::/48")}, selector.Set{pfx("203.0.113.0/24"), pfx("2001:db8:2::/48")}, "198.51.100.1", "203.0.113.1", true},
		{selector.Set{pfx("198.51.100.0/24"), pfx("2001:db8:1::/48")}, selector.Set{pfx("203.0.113.0/24"), pfx("2001:db8:2::/48")}, "2001:db8:1::1", "203.0.113.1", true},
		{selector.Set{pfx("198.51.100.0/24"), pfx("2001:db8:1::/48")}, selector.Set{pfx("203.0.113.0/24"), pfx("2001:db8:2::/48")}, "198.51.101.1", "203.0.113.1", false},
	} {
		var e saEntry
		e.setSelectors(c.local, c.remote)
		if got := e.covers(a(c.src), a(c.dst)); got != c.want || got != (c.local.Contains(a(c.src)) && c.remote.Contains(a(c.dst))) {
			t.Errorf("%v to %v holds %s to %s: %v, want %v", c.local, c.remote, c.src, c.dst, got, c.want)
		}
	}
}
