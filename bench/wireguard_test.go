package bench

import (
	"testing"
	"time"
)

// TestWireGuardTunnel: the wireguard-go anchor carries iperf3 traffic
// between two namespaces (root: namespaces; iperf3 must be installed).
func TestWireGuardTunnel(t *testing.T) {
	needRoot(t)
	r, err := MeasureWireGuard(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Gbps <= 0 || r.BareGbps <= 0 || r.Ratio <= 0 || r.CPUNsPerPacket <= 0 || r.Peer != "wireguard-go" {
		t.Fatalf("%+v", r)
	}
}
