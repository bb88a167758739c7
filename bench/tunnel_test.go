package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/transform"
)

// TestMeasureTunnelRing: a raw ESP tunnel through the gateways' AF_XDP
// rings carries iperf3's traffic, and the row says so, with the gateways'
// CPU per packet.
func TestMeasureTunnelRing(t *testing.T) {
	needRoot(t)
	tr, _ := transform.Lookup("esp-chacha20-poly1305")
	r, err := MeasureTunnel(tr, TunnelSetup{RawTransport: "auto"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Gbps <= 0 || r.BareGbps <= 0 || r.CPUNsPerPacket <= 0 || !strings.HasPrefix(r.Transport, "af_xdp ring") {
		t.Fatalf("%+v", r)
	}
}
