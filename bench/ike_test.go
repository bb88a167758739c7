package bench

import (
	"testing"
	"time"

	"github.com/ismgw/ism/transform"
)

// needSwan skips a test that needs root (namespaces, charon) when not
// root; as root, a missing strongSwan fails it (CI installs it).
func needSwan(t *testing.T) {
	t.Helper()
	needRoot(t)
	if why := swanAvailable(); why != "" {
		t.Fatal(why)
	}
}

// TestMeasureIKE runs every run of `ismbench ike` on a few tunnels, with a
// window smaller than their number and the quick mode runs, against real
// charons in namespaces.
func TestMeasureIKE(t *testing.T) {
	needSwan(t)
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	o := IKEOptions{Tunnels: 12, Window: 5, IKE: IKE{Encryption: "aes128", Hash: "sha256", Group: 19}, Transform: tr,
		QuickModes: true, Timeout: time.Minute}
	r, err := MeasureIKE(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	for name, v := range map[string]float64{
		"setups/s": r.SetupsPerS, "strongSwan setups/s": r.StrongSwanSetupsPerS,
		"phase 1s/s": r.Phase1PerS, "strongSwan phase 1s/s": r.StrongSwanPhase1PerS,
		"quick modes/s": r.QuickModesPerS, "strongSwan quick modes/s": r.StrongSwanQuickModesPerS,
		"bytes per tunnel": r.BytesPerTunnel, "strongSwan bytes per tunnel": r.StrongSwanBytesPerTunnel,
		"T90": r.T90Seconds, "strongSwan T90": r.StrongSwanT90Seconds,
	} {
		if v <= 0 {
			t.Errorf("%s: %v", name, v)
		}
	}
	// A setup includes its phase 1: the last tunnel is up no sooner
	// than the last phase 1.
	if r.SetupsPerS > r.Phase1PerS || r.StrongSwanSetupsPerS > r.StrongSwanPhase1PerS {
		t.Errorf("setups faster than phase 1s: %+v", r)
	}
	if r.Proposal != "aes128-sha256-ecp256" || r.ESP != "aes128gcm16" || r.Window != 5 {
		t.Errorf("proposal %q, ESP %q, window %d", r.Proposal, r.ESP, r.Window)
	}
	if err := (IKEOptions{Tunnels: MaxIKETunnels + 1, IKE: DefaultIKE, Transform: tr}).Validate(); err == nil {
		t.Errorf("%d tunnels validated", MaxIKETunnels+1)
	}
}
