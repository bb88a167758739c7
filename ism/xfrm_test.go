package ism

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ismgw/ism/driver/kernel"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/lookaside"
	"github.com/ismgw/ism/ism/operator"
)

// tunnelDetail returns `show ipsec tunnel detail ipsec:t1` and its data.
func tunnelDetail(t *testing.T, g *Gateway) (string, operator.TunnelStatus) {
	t.Helper()
	text, data, err := g.Exec("show ipsec tunnel detail ipsec:t1")
	if err != nil {
		t.Fatal(err)
	}
	ts := data.([]operator.TunnelStatus)
	if len(ts) != 1 {
		t.Fatalf("show ipsec tunnel detail: want one tunnel:\n%s", text)
	}
	return text, ts[0]
}

// TestXFRMNotChosen runs where the kernel has no XFRM ESP (the CI
// machine): a tunnel with driver auto runs on the lookaside datapath and
// says why in the probe's words; with driver kernel it says the same, falls
// back (carrying traffic) and the fallback is counted.
func TestXFRMNotChosen(t *testing.T) {
	t.Parallel()
	r := kernel.Probe()
	if r.ESP.Present {
		t.Skip("the kernel has XFRM ESP: TestXFRMDatapath covers the XFRM choice")
	}
	for _, c := range []struct {
		driver  string
		counted uint64
	}{{"auto", 0}, {"kernel", 1}} {
		t.Run(c.driver, func(t *testing.T) {
			t.Parallel()
			x := newLab(t, manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel, extraA: "  tunnel driver " + c.driver + "\n", xfrm: true}))
			if err := x.ping(t, 3); err != nil {
				t.Fatal(err)
			}
			text, st := tunnelDetail(t, x.ga)
			t.Logf("%s", text)
			want := "Datapath lookaside: xfrm protocol offload not used: " + r.ESP.Reason
			if !strings.Contains(text, want) || st.Datapath != "lookaside" || st.Interface != lookaside.TUNName {
				t.Errorf("show ipsec tunnel detail: want %q on the TUN device:\n%s", want, text)
			}
			if st.State != "up" || st.Outbound.Packets < 3 || st.Inbound.Packets < 3 {
				t.Errorf("tunnel %s, %d out, %d in; want up, 3 each way", st.State, st.Outbound.Packets, st.Inbound.Packets)
			}
			fb := x.ga.Statistics().Fallbacks
			if fb["xfrm-unavailable"] != c.counted || fb["xfrm-fault"] != 0 {
				t.Errorf("fallbacks %v: want xfrm-unavailable %d, xfrm-fault 0", fb, c.counted)
			}
			if text, _, _ := x.ga.Exec("show ipsec statistics"); !strings.Contains(text, fmt.Sprintf("xfrm-unavailable %d", c.counted)) {
				t.Errorf("show ipsec statistics does not count the fallback:\n%s", text)
			}
		})
	}
}

// TestXFRMSoftwareNotAsked: driver software never looks at XFRM.
func TestXFRMSoftwareNotAsked(t *testing.T) {
	t.Parallel()
	x := newLab(t, manualSpec(t, e2eCase{transform: "esp-aes128-hmac-sha", mode: ipsec.Tunnel, extraA: "  tunnel driver software\n", xfrm: true}))
	text, st := tunnelDetail(t, x.ga)
	if st.DatapathReason != "" || strings.Contains(text, "xfrm") || st.Driver != "software" {
		t.Errorf("driver software: want no XFRM reason and the software driver:\n%s", text)
	}
}
