//go:build dpdk && cgo

package dpdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

// TestPipeline runs one SA's packets through offload pipelines whose
// workers each drive their own queue pair of the dpdk driver, both ways
// against the fallback engine: the packets come out in order, in driver
// buffers and in Go memory.
func TestPipeline(t *testing.T) {
	d := openT(t, 2, nil)
	if n := d.Info().QueuePairs; n != 2 {
		t.Fatalf("%d queue pairs", n)
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, name := range []string{"esp-aes128-gcm16", "esp-aes128-hmac-sha"} {
		t.Run(name, func(t *testing.T) {
			tr, _ := transform.Lookup(name)
			fa, fb := fallback.New(1), fallback.New(1)
			defer fa.Close()
			defer fb.Close()
			ea, err := offload.New(offload.Config{Fallback: fa, Drivers: []driver.Driver{d}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { // not ea.Close: the driver outlives the engine
				for _, sa := range ea.SAs() {
					_ = ea.DeleteSA(sa.ID())
				}
			}()
			eb, err := offload.New(offload.Config{Fallback: fb})
			if err != nil {
				t.Fatal(err)
			}
			defer eb.Close()
			base := offload.SAConfig{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")}
			a, b := saPair(t, ea, eb, tr, base, r)
			for _, sa := range []*offload.SA{a.out, a.in} {
				if got, why := sa.Driver(); got != Name {
					t.Fatalf("bound to %s: %s", got, why)
				}
			}
			mbufs := make([]*driver.Buffer, 600)
			if d.AllocBuffers(mbufs) != len(mbufs) {
				t.Fatal("AllocBuffers ran short")
			}
			defer d.FreeBuffers(mbufs)
			const n = 1200
			pkts := make([]*offload.Packet, n)
			want := make([][]byte, n)
			load := func(sa *offload.SA) {
				for i := range pkts {
					want[i] = testpkt.UDP(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1"), 1, 2, 64+r.IntN(1300), byte(i))
					binary.BigEndian.PutUint32(want[i][28:], uint32(i))
					pk := offload.NewPacket()
					if i%2 == 0 {
						pk.Buf = mbufs[i/2]
					}
					pk.Reset(len(want[i]))
					copy(pk.Buf.Bytes(), want[i])
					pk.SA = sa
					pkts[i] = pk
				}
			}
			// a (dpdk) out through a pipeline, b (software) in through one.
			load(a.out)
			through(t, ea, ipsec.Outbound, pkts, r)
			through(t, eb, ipsec.Inbound, pkts, r)
			for i, pk := range pkts {
				if !bytes.Equal(pk.Buf.Bytes(), want[i]) {
					t.Fatalf("dpdk to software: packet %d differs", i)
				}
			}
			// b out, a (dpdk) in.
			load(b.out)
			through(t, eb, ipsec.Outbound, pkts, r)
			through(t, ea, ipsec.Inbound, pkts, r)
			for i, pk := range pkts {
				if !bytes.Equal(pk.Buf.Bytes(), want[i]) {
					t.Fatalf("software to dpdk: packet %d differs", i)
				}
			}
			for k, v := range ea.Fallbacks() {
				if v != 0 {
					t.Errorf("%d ops fell back to software (%s)", v, k)
				}
			}
		})
	}
}

// through runs pkts through a two-worker pipeline of e in bursts of random
// sizes and checks that every one comes out, in order, not dropped.
func through(t *testing.T, e *offload.Engine, dir ipsec.Direction, pkts []*offload.Packet, r *rand.Rand) {
	t.Helper()
	rest, i := pkts, 0
	var bad error
	pl := e.NewPipeline(dir, offload.PipelineConfig{Workers: 2,
		Fill: func(bu *offload.Burst) bool { // one lane at a time
			if len(rest) == 0 {
				return false
			}
			k := min(len(rest), 1+r.IntN(offload.BurstSize))
			bu.Pkts = append(bu.Pkts, rest[:k]...)
			rest = rest[k:]
			return true
		},
		Deliver: func(bu *offload.Burst) { // one burst at a time, in order
			for _, pk := range bu.Pkts {
				if bad == nil && (pk != pkts[i] || pk.Drop != offload.NotDropped) {
					bad = fmt.Errorf("%s: packet %d out of order or dropped (%v)", dir, i, pk.Drop)
				}
				i++
			}
		},
	})
	pl.Wait()
	if bad != nil {
		t.Fatal(bad)
	}
	if i != len(pkts) {
		t.Fatalf("%s: %d of %d packets came out", dir, i, len(pkts))
	}
}
