//go:build dpdk && cgo

package dpdk

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// gateway is one offload.Engine with its SAs towards the other side.
type gateway struct {
	e       *offload.Engine
	p       *offload.Processor
	out, in *offload.SA
}

// saPair adds the SAs of a tunnel between two engines: a's outbound is b's
// inbound (SPI 0x1001) and b's outbound is a's inbound (SPI 0x2002).
func saPair(t *testing.T, ea, eb *offload.Engine, tr transform.Transform, base offload.SAConfig, r *rand.Rand) (a, b gateway) {
	t.Helper()
	a, b = gateway{e: ea, p: ea.NewProcessor()}, gateway{e: eb, p: eb.NewProcessor()}
	la, lb := base.Src, base.Dst
	add := func(e *offload.Engine, spi uint32, dir ipsec.Direction, src, dst netip.Addr, ck, ak ipsec.Key) *offload.SA {
		c := base
		c.SPI, c.Transform, c.Direction, c.Src, c.Dst, c.CipherKey, c.AuthKey = spi, tr, dir, src, dst, ck, ak
		if dir == ipsec.Inbound {
			c.ReplayWindow = 64
		}
		sa, err := e.AddSA(c)
		if err != nil {
			t.Fatal(err)
		}
		return sa
	}
	ck1, ak1 := keys(r, tr)
	ck2, ak2 := keys(r, tr)
	a.out = add(ea, 0x1001, ipsec.Outbound, la, lb, ck1, ak1)
	b.in = add(eb, 0x1001, ipsec.Inbound, la, lb, ck1, ak1)
	b.out = add(eb, 0x2002, ipsec.Outbound, lb, la, ck2, ak2)
	a.in = add(ea, 0x2002, ipsec.Inbound, lb, la, ck2, ak2)
	return a, b
}

// TestOffloadInterop runs ESP and AH through an offload.Engine that prefers
// the dpdk driver and one that has only the fallback engine, both ways,
// on Go buffers and on driver buffers; tampered packets are dropped as ICV
// failures.
func TestOffloadInterop(t *testing.T) {
	d := openT(t, 1, nil)
	type variant struct {
		name string
		cfg  offload.SAConfig
		only []string // transforms, or nil for all
	}
	v4a, v4b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	few := []string{"esp-aes128-gcm16", "esp-aes256-gcm8", "esp-chacha20-poly1305", "esp-aes128-hmac-sha", "esp-3des-hmac-sha256", "esp-null-hmac-sha", "ah-hmac-sha256"}
	variants := []variant{
		{"tunnel4", offload.SAConfig{Mode: ipsec.Tunnel, Src: v4a, Dst: v4b}, nil},
		{"tunnel6-esn", offload.SAConfig{Mode: ipsec.Tunnel, Src: v6a, Dst: v6b, ESN: true}, few},
		{"transport4", offload.SAConfig{Mode: ipsec.Transport, Src: v4a, Dst: v4b}, few},
		{"natt4", offload.SAConfig{Mode: ipsec.Tunnel, Src: v4a, Dst: v4b, UDPEncap: true}, few[:6]},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, v := range variants {
		for _, c := range d.Info().Capabilities {
			tr := c.Transform
			if v.only != nil && !contains(v.only, tr.Name()) || v.cfg.UDPEncap && tr.Protocol != transform.ESP {
				continue
			}
			t.Run(v.name+"/"+tr.Name(), func(t *testing.T) {
				fa, fb := fallback.New(1), fallback.New(1)
				defer fa.Close()
				defer fb.Close()
				ea, err := offload.New(offload.Config{Fallback: fa, Drivers: []driver.Driver{d}})
				if err != nil {
					t.Fatal(err)
				}
				// Not ea.Close: it waits for the driver's Events channel to
				// close, and the driver outlives this engine.
				defer func() {
					for _, sa := range ea.SAs() {
						_ = ea.DeleteSA(sa.ID())
					}
				}()
				eb, err := offload.New(offload.Config{Fallback: fb})
				if err != nil {
					t.Fatal(err)
				}
				defer eb.Close()
				a, b := saPair(t, ea, eb, tr, v.cfg, r)
				if name, why := a.out.Driver(); name != Name {
					t.Fatalf("outbound SA bound to %s: %s", name, why)
				}
				if name, why := a.in.Driver(); name != Name {
					t.Fatalf("inbound SA bound to %s: %s", name, why)
				}
				for _, zeroCopy := range []bool{false, true} {
					exchange(t, d, a, b, zeroCopy, tr.Authenticates())
				}
				for k, n := range ea.Fallbacks() {
					if n != 0 {
						t.Errorf("%d packets fell back to software (%s)", n, k)
					}
				}
			})
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// exchange sends a burst of packets of several sizes from a (dpdk) to b
// (fallback) and back, then tampered ones from b to a.
func exchange(t *testing.T, d *Driver, a, b gateway, zeroCopy, authenticates bool) {
	t.Helper()
	sizes := []int{1, 2, 3, 15, 16, 17, 100, 1400, 8000}
	pkts := make([]*offload.Packet, len(sizes))
	inner := make([][]byte, len(sizes))
	var mbufs []*driver.Buffer
	if zeroCopy {
		mbufs = make([]*driver.Buffer, len(sizes))
		if d.AllocBuffers(mbufs) != len(sizes) {
			t.Fatal("AllocBuffers ran short")
		}
		defer d.FreeBuffers(mbufs)
	}
	load := func(sa *offload.SA) {
		src, dst := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1")
		if c := sa.Config(); c.Mode == ipsec.Transport {
			src, dst = c.Src, c.Dst
		}
		for i, n := range sizes {
			inner[i] = testpkt.UDP(src, dst, 1000, 2000, n, byte(i))
			pk := offload.NewPacket()
			if zeroCopy {
				pk.Buf = mbufs[i]
			}
			pk.Reset(len(inner[i]))
			copy(pk.Buf.Bytes(), inner[i])
			pk.SA = sa
			pkts[i] = pk
		}
	}
	check := func(dir string) {
		for i, pk := range pkts {
			if pk.Drop != offload.NotDropped {
				t.Fatalf("%s, %d bytes, zero copy %v: dropped: %v", dir, sizes[i], zeroCopy, pk.Drop)
			}
			if !bytes.Equal(pk.Buf.Bytes(), inner[i]) {
				t.Fatalf("%s, %d bytes, zero copy %v: inner packet differs", dir, sizes[i], zeroCopy)
			}
		}
	}
	encapOK := func(g gateway) {
		g.p.Encap(pkts)
		for i, pk := range pkts {
			if pk.Drop != offload.NotDropped {
				t.Fatalf("encap of %d bytes, zero copy %v: dropped: %v", sizes[i], zeroCopy, pk.Drop)
			}
		}
	}
	load(a.out)
	encapOK(a)
	b.p.Decap(pkts)
	check("dpdk to fallback")
	load(b.out)
	encapOK(b)
	a.p.Decap(pkts)
	check("fallback to dpdk")
	if !authenticates {
		return
	}
	load(b.out)
	encapOK(b)
	for i, pk := range pkts {
		p := pk.Buf.Bytes()
		p[len(p)-1-i%len(p[len(p)-40:])] ^= 0x80 // in the ICV or the payload before it
	}
	a.p.Decap(pkts)
	for i, pk := range pkts {
		if pk.Drop != offload.DropICV {
			t.Fatalf("tampered %d bytes, zero copy %v: drop %v, want %v", sizes[i], zeroCopy, pk.Drop, offload.DropICV)
		}
	}
}
