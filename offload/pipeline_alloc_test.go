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
	src := numbered(1000, 1)
	pkts := make([]*offload.Packet, 64)
	for i := range pkts {
		pkts[i] = packet(src)
	}
	// Each pipeline takes a burst when asked on its channel and says
	// when it is delivered.
	outGo, inGo, done := make(chan bool), make(chan bool), make(chan struct{})
	var encapped []*offload.Packet
	out := a.e.NewPipeline(ipsec.Outbound, offload.PipelineConfig{Workers: 2,
		Fill: func(bu *offload.Burst) bool {
			if !<-outGo {
				return false
			}
			for _, pk := range pkts {
				pk.Reset(len(src))
				copy(pk.Buf.Bytes()[:28], src)
				pk.SA = a.sa
				bu.Pkts = append(bu.Pkts, pk)
			}
			return true
		},
		Deliver: func(bu *offload.Burst) { encapped = bu.Pkts; done <- struct{}{} }})
	in := b.e.NewPipeline(ipsec.Inbound, offload.PipelineConfig{Workers: 2,
		Fill: func(bu *offload.Burst) bool {
			if !<-inGo {
				return false
			}
			bu.Pkts = append(bu.Pkts, encapped...)
			return true
		},
		Deliver: func(bu *offload.Burst) {
			for _, pk := range bu.Pkts {
				if pk.Drop != offload.NotDropped {
					t.Error(pk.Drop)
				}
			}
			done <- struct{}{}
		}})
	t.Cleanup(func() {
		outGo <- false
		inGo <- false
		out.Wait()
		in.Wait()
	})
	run := func() {
		outGo <- true
		<-done
		inGo <- true
		<-done
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%.1f allocations per burst of %d", n, len(pkts))
	}
}
