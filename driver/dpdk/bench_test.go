//go:build dpdk && cgo

package dpdk

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
)

// benchBurst is the packets per Encap call, as dpdk-test-crypto-perf's
// --burst-sz 32.
const benchBurst = 32

// BenchmarkEncap encapsulates ESP tunnel-mode packets through an
// offload.Engine, the gateway's path, with three engines in the same run:
// dpdk on driver buffers (zero copy), dpdk on Go memory (copied into mbufs
// and back) and the software engine. The size is the inner IP packet's.
// Each round rewrites only the inner IP header, as a read from TUN would
// the whole packet.
func BenchmarkEncap(b *testing.B) {
	d := openT(b, 1, nil)
	for _, name := range []string{"esp-aes128-gcm16", "esp-aes128-hmac-sha"} {
		tr := mustTransform(b, name)
		for _, size := range []int{64, 512, 1420} {
			for _, engine := range []string{"dpdk", "dpdk-gomem", "software"} {
				b.Run(fmt.Sprintf("%s/%d/%s", name, size, engine), func(b *testing.B) {
					benchEncap(b, d, tr.Name(), size, engine)
				})
			}
		}
	}
}

func benchEncap(b *testing.B, d *Driver, trName string, size int, engine string) {
	tr := mustTransform(b, trName)
	fb := fallback.New(1)
	defer fb.Close()
	c := offload.Config{Fallback: fb}
	if engine != "software" {
		c.Drivers = []driver.Driver{d}
	}
	e, err := offload.New(c)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, sa := range e.SAs() {
			_ = e.DeleteSA(sa.ID())
		}
	}()
	ck, ak := keys(rand.New(rand.NewPCG(9, 9)), tr)
	sa, err := e.AddSA(offload.SAConfig{SPI: 0x3003, Transform: tr, Direction: ipsec.Outbound, Mode: ipsec.Tunnel,
		Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), CipherKey: ck, AuthKey: ak})
	if err != nil {
		b.Fatal(err)
	}
	if name, why := sa.Driver(); (engine == "software") != (name == fallback.Name) {
		b.Fatalf("SA bound to %s: %s", name, why)
	}
	inner := testpkt.UDP(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1"), 1, 2, size-28, 1)
	pkts := make([]*offload.Packet, benchBurst)
	for i := range pkts {
		pkts[i] = offload.NewPacket()
	}
	if engine == "dpdk" {
		bufs := make([]*driver.Buffer, benchBurst)
		if d.AllocBuffers(bufs) != benchBurst {
			b.Fatal("AllocBuffers ran short")
		}
		defer d.FreeBuffers(bufs)
		for i, pk := range pkts {
			pk.Buf = bufs[i]
		}
	}
	for _, pk := range pkts {
		pk.Reset(len(inner))
		copy(pk.Buf.Bytes(), inner)
	}
	p := e.NewProcessor()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += benchBurst {
		for _, pk := range pkts {
			pk.Reset(len(inner))
			pk.SA = sa
			copy(pk.Buf.Bytes()[:28], inner[:28])
		}
		p.Encap(pkts)
	}
	b.StopTimer()
	for _, pk := range pkts {
		if pk.Drop != offload.NotDropped {
			b.Fatalf("dropped: %v", pk.Drop)
		}
	}
	if n := e.Fallbacks()["queue-full"] + e.Fallbacks()["fault"]; n != 0 {
		b.Fatalf("%d packets fell back to software", n)
	}
}

// BenchmarkQueuePair measures the driver alone, as dpdk-test-crypto-perf
// --ptest throughput does: bursts of 32 prepared ops on driver buffers,
// enqueued and dequeued, with no ESP framing. The size is the ESP payload
// the device encrypts (CBC: rounded up to the block).
func BenchmarkQueuePair(b *testing.B) {
	d := openT(b, 1, nil)
	for _, name := range []string{"esp-aes128-gcm16", "esp-aes128-hmac-sha"} {
		tr := mustTransform(b, name)
		for _, size := range []int{64, 512, 1420} {
			b.Run(fmt.Sprintf("%s/%d", name, size), func(b *testing.B) {
				ck, ak := keys(rand.New(rand.NewPCG(9, 9)), tr)
				s, err := d.NewSession(driver.SessionConfig{Transform: tr, CipherKey: ck, AuthKey: ak})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				bufs := make([]*driver.Buffer, benchBurst)
				if d.AllocBuffers(bufs) != benchBurst {
					b.Fatal("AllocBuffers ran short")
				}
				defer d.FreeBuffers(bufs)
				ops := make([]*driver.Op, benchBurst)
				out := make([]*driver.Op, benchBurst)
				for i := range ops {
					// Payload plus trailer is the size, or the next block.
					op, _ := espLayout{t: tr, spi: 1, seq: 1}.build(bufs[i], make([]byte, size-2), make([]byte, 16))
					op.Session = s
					ops[i] = &op
				}
				qp := d.QueuePair(0)
				b.SetBytes(int64(ops[0].CipherLen))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += benchBurst {
					sent, got := 0, 0
					for got < benchBurst {
						sent += qp.Enqueue(ops[sent:])
						got += qp.Dequeue(out[got:])
					}
				}
				b.StopTimer()
				for _, op := range ops {
					if op.Status != driver.OK {
						b.Fatal(op.Status)
					}
				}
			})
		}
	}
}
