package offload_test

import (
	"runtime"
	"testing"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
)

// keepRun sends n bursts of one SA's packets through an outbound pipeline
// with c's lanes and depth, each burst's packets its Owner's, and checks
// that every packet comes out once, in order, with consecutive sequence
// numbers. Deliver yields its core yield times first, so that other lanes
// take their turns meanwhile. It returns the pipeline's counters.
func keepRun(t *testing.T, c offload.PipelineConfig, n, yield int) offload.PipelineStats {
	t.Helper()
	a, b := newSide(t), newSide(t)
	pair(t, gcm, pairOpts{}, a, b)
	src := numbered(200, 0)
	k, seq := 0, uint32(0)
	c.NewBurst = func(bu *offload.Burst) {
		pkts := make([]*offload.Packet, 8)
		for i := range pkts {
			pkts[i] = offload.NewPacket()
		}
		bu.Owner = pkts
	}
	c.Fill = func(bu *offload.Burst) bool {
		if k == n {
			return false
		}
		k++
		for _, pk := range bu.Owner.([]*offload.Packet) {
			pk.Reset(len(src))
			copy(pk.Buf.Bytes(), src)
			pk.SA = a.sa
			bu.Pkts = append(bu.Pkts, pk)
		}
		return true
	}
	c.Deliver = func(bu *offload.Burst) {
		for range yield {
			runtime.Gosched()
		}
		for _, pk := range bu.Pkts {
			if pk.Drop != offload.NotDropped {
				t.Errorf("drop %v", pk.Drop)
			}
			if got := seqOf(pk.Buf.Bytes(), gcm); got != seq+1 {
				t.Errorf("sequence number %d after %d", got, seq)
			}
			seq++
		}
	}
	pl := a.e.NewPipeline(ipsec.Outbound, c)
	pl.Wait()
	if want := uint32(8 * n); seq != want || a.sa.Seq() != uint64(want) {
		t.Errorf("%d packets came out in order, SA at %d; want %d", seq, a.sa.Seq(), want)
	}
	return pl.Stats()
}

// TestPipelineKeepsBursts: a lane that delivered its own burst runs the
// same burst (and its Owner's buffers) next, so that they stay in its
// core's caches: with one lane, every burst after the first is the one
// it just delivered.
func TestPipelineKeepsBursts(t *testing.T) {
	st := keepRun(t, offload.PipelineConfig{Workers: 1, Depth: 4}, 50, 0)
	if st.Bursts != 50 || st.Kept != 49 {
		t.Errorf("%d bursts, %d of them kept by their lane; want 50 and 49", st.Bursts, st.Kept)
	}
}

// TestPipelineKeptBurstsNoDeadlock: lanes keep the bursts they delivered,
// yet with fewer bursts than lanes (depth 1 on four lanes) a lane waiting
// in the intake for a free burst still gets one: every packet comes out,
// in order (Deliver yields, so that another lane is in the intake waiting
// for the burst when its lane comes back with it).
func TestPipelineKeptBurstsNoDeadlock(t *testing.T) {
	st := keepRun(t, offload.PipelineConfig{Workers: 4, Depth: 1}, 200, 20)
	if st.Bursts != 200 {
		t.Errorf("%d bursts ran, want 200", st.Bursts)
	}
}
