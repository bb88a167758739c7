package offload_test

import (
	"runtime"
	"testing"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// BenchmarkSAMemory reports the live heap of one tunnel's SA pair on the
// software engine (B/pair): both offload.SAs, their replay window and
// their AES-GCM sessions, ESP in UDP with the default replay window. One
// op adds 1,000 pairs.
func BenchmarkSAMemory(b *testing.B) {
	const pairs = 1000
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	var perPair float64
	for b.Loop() {
		s := newSide(b)
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		sas := make([]*offload.SA, 0, 2*pairs)
		for i := range pairs {
			ck, ak := keysFor(tr, byte(i))
			c := offload.SAConfig{SPI: 0x1000 + uint32(i), Transform: tr, Src: v4a, Dst: v4b, UDPEncap: true,
				CipherKey: ck, AuthKey: ak, ReplayWindow: offload.DefaultReplayWindow}
			for _, dir := range []ipsec.Direction{ipsec.Outbound, ipsec.Inbound} {
				c.Direction = dir
				if dir == ipsec.Inbound {
					c.Src, c.Dst = v4b, v4a
				}
				sa, err := s.e.AddSA(c)
				if err != nil {
					b.Fatal(err)
				}
				sas = append(sas, sa)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		perPair = float64(m1.HeapAlloc-m0.HeapAlloc-uint64(cap(sas))*8) / pairs
		runtime.KeepAlive(sas)
		for _, sa := range sas {
			if err := s.e.DeleteSA(sa.ID()); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(perPair, "B/pair")
}
