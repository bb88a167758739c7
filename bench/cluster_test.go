package bench

import (
	"math"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestMeasureCluster runs `ismbench cluster` once, two nodes, and checks
// that its figures hold together (the targets are the benchmark's, not
// this test's): the takeover is etcd's part plus ISM's, each measured;
// the survivor carried every tunnel on without renegotiating or a replay
// drop at the peer.
func TestMeasureCluster(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/ismgw/ism/cmd/ismd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ISMD = filepath.Join(dir, "ismd")
	defer func() { ISMD = "" }()
	r, err := MeasureCluster(ClusterConfig{Nodes: 2, TTL: 2 * time.Second, Interval: 10 * time.Millisecond}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	switch {
	case r.Survivor != "n2" || r.Renegotiations != 0 || r.ReplayDrops != 0:
		t.Errorf("survivor %q, %d renegotiations, %d replay drops", r.Survivor, r.Renegotiations, r.ReplayDrops)
	case r.EtcdExpiryS <= 0 || r.AfterExpiryS <= 0 || math.Abs(r.EtcdExpiryS+r.AfterExpiryS-r.TakeoverS) > 1e-3:
		t.Errorf("takeover %.3f s is not etcd's %.3f s + ISM's %.3f s", r.TakeoverS, r.EtcdExpiryS, r.AfterExpiryS)
	case r.EtcdExpiryS < 0.25:
		// A live owner's lease outlives its fence (TTL − margin after
		// its last renewal) by the margin, 500 ms: a delete seen sooner
		// is not the lease's expiry.
		t.Errorf("etcd expired the owner's lease %.3f s after the kill", r.EtcdExpiryS)
	case r.LostPackets == 0 || r.ProbePackets <= r.LostPackets || r.EtcdTxnsPerS <= 0:
		t.Errorf("probes %d lost of %d, %.2f etcd txn/s", r.LostPackets, r.ProbePackets, r.EtcdTxnsPerS)
	}
}
