//go:build !race

package offload_test

import (
	"testing"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
)

// TestPipelineZeroAllocs: in steady state a burst through an outbound and
// an inbound pipeline allocates nothing.
func TestPipelineZeroAllocs(t *testing.T) {
	a, b := newSide(t), newSide(t)
	pair(t, gcm, pairOpts{window: 1024, esn: true}, a, b)
	out := a.e.NewPipeline(ipsec.Outbound, offload.PipelineConfig{Workers: 2})
	in := b.e.NewPipeline(ipsec.Inbound, offload.PipelineConfig{Workers: 2})
	t.Cleanup(out.Close)
	t.Cleanup(in.Close)
	ob, ib := out.NewBurst(), in.NewBurst()
	src := numbered(1000, 1)
	pkts := make([]*offload.Packet, 64)
	for i := range pkts {
		pkts[i] = packet(src)
	}
	run := func() {
		ob.Pkts = ob.Pkts[:0]
		for _, pk := range pkts {
			pk.Reset(len(src))
			copy(pk.Buf.Bytes()[:28], src)
			pk.SA = a.sa
			ob.Pkts = append(ob.Pkts, pk)
		}
		out.Submit(ob)
		got, _ := out.Next()
		ib.Pkts = append(ib.Pkts[:0], got.Pkts...)
		in.Submit(ib)
		got, _ = in.Next()
		for _, pk := range got.Pkts {
			if pk.Drop != offload.NotDropped {
				t.Fatal(pk.Drop)
			}
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%.1f allocations per burst of %d", n, len(pkts))
	}
}
