package ism

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ism/operator"
)

// pairDPD is the DPD of the gateway that probes in the ISM↔ISM tests: by
// the idle rule, soon.
var pairDPD = dpdTimers{sent: time.Hour, silent: time.Hour, idle: 2 * time.Second, retryInterval: time.Second, retries: 2}

// pairSpec is the lab of a signaled tunnel between two ISMs: A (192.0.2.1,
// 198.51.100.0/24 behind it) and B (192.0.2.2, 203.0.113.0/24 behind it),
// pre-shared key, main mode, esp-aes128-gcm16. dpd holds the global DPD
// lines, tunnelA and tunnelB the tunnel blocks' extra lines.
func pairSpec(dpd, tunnelA, tunnelB string) labSpec {
	side := func(ns, src, dst, local, remote, extra string) string {
		return ismConf{vrs: [][2]string{{"v", ns}}, global: pskRule("aes128", "sha", 14, "", netip.MustParseAddr(dst)) + dpd,
			transforms: []string{"esp-aes128-gcm16"},
			tunnels:    []ismTunnel{{source: src, dest: dst, local: local + " 255.255.255.0", remote: remote + " 255.255.255.0", extra: extra}},
		}.String()
	}
	return labSpec{hosts: true,
		a: func(x *lab) string {
			return side(x.a, "192.0.2.1", "192.0.2.2", "198.51.100.0", "203.0.113.0", tunnelA)
		},
		b: func(x *lab) string {
			return side(x.b, "192.0.2.2", "192.0.2.1", "203.0.113.0", "198.51.100.0", tunnelB)
		},
	}
}

// ikeSAOf returns the one IKE SA of a gateway (`show ike sa`).
func ikeSAOf(t *testing.T, g *Gateway) operator.IKESA {
	t.Helper()
	text, data, err := g.Exec("show ike sa")
	if err != nil {
		t.Fatal(err)
	}
	sas := data.([]operator.IKESA)
	if len(sas) != 1 {
		t.Fatalf("show ike sa: want one IKE SA:\n%s", text)
	}
	return sas[0]
}

// TestDPDBetweenGateways: two ISMs with a signaled tunnel. With DPD on at
// both ends, both announce it and the one whose idle timer runs first
// inquires and the other answers; the answering end, which hears the
// inquiries, has no reason to inquire itself. With DPD off at one end
// (tunnel dpd off), that end does not announce DPD, so the other sends it
// no inquiry however long the tunnel idles, and it sends none either.
func TestDPDBetweenGateways(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		bTunnel string // b's tunnel lines
		peerDPD bool   // b announces DPD
	}{
		{name: "both-on", bTunnel: "  tunnel dpd timers idle 3600\n", peerDPD: true},
		{name: "peer-off", bTunnel: "  tunnel dpd off\n", peerDPD: false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			x := newLab(t, pairSpec(pairDPD.lines(), "", c.bTunnel))
			l, a, ga, gb := x.lab, x.a, x.ga, x.gb
			// The first packet starts IKE and may be lost: ping twice.
			if _, err := l.Run(a, "ping", "-c", "3", "-i", "0.2", "-W", "10", "-I", "198.51.100.1", "203.0.113.1"); err != nil {
				if out, err := l.Run(a, "ping", "-c", "3", "-i", "0.2", "-W", "10", "-I", "198.51.100.1", "203.0.113.1"); err != nil {
					t.Fatalf("ping through the tunnel: %v\n%s", err, out)
				}
			}
			quiet := time.Now() // no traffic from here on

			saA, saB := ikeSAOf(t, ga), ikeSAOf(t, gb)
			if !saA.DPD || saA.PeerDPD != c.peerDPD || saB.DPD != c.peerDPD || !saB.PeerDPD {
				t.Errorf("DPD announced: a %v (b saw %v), b %v (a saw %v); want a true, b %v",
					saA.DPD, saB.PeerDPD, saB.DPD, saA.PeerDPD, c.peerDPD)
			}
			var ca, cb ike.Counters
			if c.peerDPD {
				deadline := time.Now().Add(20 * time.Second)
				for {
					ca, cb = statsIKE(t, ga), statsIKE(t, gb)
					if ca.DPDAcks >= 2 && cb.DPDAnswered >= 2 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("no two answered inquiries: a %+v, b %+v", ca, cb)
					}
					time.Sleep(50 * time.Millisecond)
				}
				t.Logf("two inquiries answered %v after the traffic stopped (idle %v)", time.Since(quiet).Round(time.Millisecond), pairDPD.idle)
				if cb.DPDInquiries != 0 {
					t.Errorf("b, which hears a's inquiries, inquired %d times", cb.DPDInquiries)
				}
			} else {
				// Twice the idle time and a retry interval: a would have
				// inquired twice had b announced DPD.
				time.Sleep(2*pairDPD.idle + pairDPD.retryInterval)
				ca, cb = statsIKE(t, ga), statsIKE(t, gb)
				if ca.DPDInquiries != 0 || cb.DPDInquiries != 0 || cb.DPDAnswered != 0 || ca.DPDAnswered != 0 {
					t.Errorf("inquiries with a peer that did not announce DPD: a %+v, b %+v", ca, cb)
				}
			}
			if ca.DPDPeersDead != 0 || cb.DPDPeersDead != 0 {
				t.Errorf("a live peer declared dead: a %+v, b %+v", ca, cb)
			}
			textA, stA := showTunnel(t, ga)
			textB, stB := showTunnel(t, gb)
			if stA.State != "up" || stB.State != "up" {
				t.Errorf("tunnels not up after idling:\n%s\n%s", textA, textB)
			}
			wantA := fmt.Sprintf("DPD: on, peer supports it: %v", c.peerDPD)
			wantB := "DPD: on, peer supports it: true"
			if !c.peerDPD {
				wantB = "DPD: off"
			}
			if !strings.Contains(textA, wantA) || !strings.Contains(textB, wantB) {
				t.Errorf("show ipsec tunnel detail: want %q at a and %q at b:\n%s\n%s", wantA, wantB, textA, textB)
			}
		})
	}
}
