package bench

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ismgw/ism/transform"
)

// TestMeasureScale runs `ismbench scale` on 16 tunnels with each IKE
// version: all come up on both gateways, the sampled tunnels answer
// pings, and the figures are consistent with each other.
func TestMeasureScale(t *testing.T) {
	needRoot(t)
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	for _, v := range []int{1, 2} {
		rows, err := MeasureScale(ScaleOptions{Tunnels: 16, IKEVersion: v, IKE: IKE{Encryption: "aes128", Hash: "sha256", Group: 19},
			Transform: tr, Window: 5, Samples: 2, Timeout: time.Minute, Peer: testPeer(t)})
		if err != nil {
			t.Fatalf("IKEv%d: %v", v, err)
		}
		r := rows[0]
		t.Logf("IKEv%d: %+v", v, r)
		sum := 0
		for _, n := range r.SetupsSeries {
			sum += n
		}
		switch {
		case r.Tunnels != 16 || sum != 16 || r.UpSeries[len(r.UpSeries)-1] != 16:
			t.Errorf("IKEv%d: %d tunnels, %d in the series, %v up", v, r.Tunnels, sum, r.UpSeries)
		case r.PingsSent != 6 || r.PingsLost != 0:
			t.Errorf("IKEv%d: %d of %d pings lost", v, r.PingsLost, r.PingsSent)
		case r.Failures != 0:
			t.Errorf("IKEv%d: %d failed negotiations", v, r.Failures)
		case !(r.T50Seconds <= r.T90Seconds && r.T90Seconds <= r.T100Seconds && r.SetupsPerS > 0):
			t.Errorf("IKEv%d: t50 %v, t90 %v, t100 %v, %v setups/s", v, r.T50Seconds, r.T90Seconds, r.T100Seconds, r.SetupsPerS)
		case r.LiveBytesPerTunnel <= 0 || r.CPUSecondsPerSetup <= 0 || r.PeerCPUSecondsPerSetup <= 0 || r.PeerLiveBytesPerTunnel <= 0:
			t.Errorf("IKEv%d: live %v B, CPU %v s and %v s a setup, peer live %v B", v, r.LiveBytesPerTunnel,
				r.CPUSecondsPerSetup, r.PeerCPUSecondsPerSetup, r.PeerLiveBytesPerTunnel)
		}
	}
}

// TestResultKeys: the -json of scale and soak carries the figures issue
// 13 names, under those names.
func TestResultKeys(t *testing.T) {
	for _, c := range []struct {
		v    any
		keys []string
	}{
		{ScaleResult{SetupsPerSAt1000: 1}, []string{"tunnels", "setups_per_s", "live_bytes_per_tunnel", "setups_per_s_at_1000"}},
		{SoakResult{}, []string{"lost_pings", "heap_slope_bytes_per_min", "rekeys", "leaked_sas"}},
		{TunnelResult{}, []string{"gbps", "ratio", "cpu_ns_per_packet"}},
		{EncapComparison{RawVsUDP: 1, RawVsUDPCPU: 1}, []string{"raw_vs_udp", "raw_vs_udp_cpu"}},
		{WireGuardResult{}, []string{"gbps", "cpu_ns_per_packet"}},
	} {
		b, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range c.keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%T: no %q in %s", c.v, k, b)
			}
		}
	}
}
