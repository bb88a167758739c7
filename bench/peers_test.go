package bench

import (
	"os/exec"
	"testing"
	"time"

	"github.com/ismgw/ism/transform"
)

// TestMeasurePeers runs `ismbench tunnel -peer strongswan` for a second a
// path: every path carries traffic.
func TestMeasurePeers(t *testing.T) {
	needSwan(t)
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatal("needs iperf3 (make deps, or apt-get install iperf3)")
	}
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	r, err := MeasurePeers(tr, DefaultIKE, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	for name, v := range map[string]float64{"ISM-ISM": r.Gbps, "ISM-strongSwan": r.ISMStrongSwanGbps,
		"strongSwan-strongSwan": r.StrongSwanGbps, "bare": r.BareGbps} {
		if v <= 0 {
			t.Errorf("%s: %v Gbit/s", name, v)
		}
	}
	if r.VsStrongSwan != r.Gbps/r.StrongSwanGbps {
		t.Errorf("vs_strongswan %v, want %v", r.VsStrongSwan, r.Gbps/r.StrongSwanGbps)
	}
}
