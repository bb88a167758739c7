//go:build dpdk && cgo

package ism

import (
	"fmt"
	"strings"
	"testing"

	_ "github.com/ismgw/ism/driver/dpdk" // registers the dpdk driver
	"github.com/ismgw/ism/ipsec"
)

// TestDPDKTunnel: with `driver dpdk` the SAs of a manual tunnel run on DPDK
// cryptodev software devices (crypto_aesni_gcm, crypto_aesni_mb), packets
// live in mbufs, and ping and TCP go through — between two gateways whose
// engines are DPDK on both sides for GCM and HMAC transforms.
func TestDPDKTunnel(t *testing.T) {
	for i, tr := range []string{"esp-aes128-gcm16", "esp-aes128-hmac-sha"} {
		t.Run(tr, func(t *testing.T) {
			// Both gateways run in this process: each gets devices of
			// its own (a DPDK device belongs to one driver).
			devs := func(n int) string {
				return fmt.Sprintf("dpdk vdev crypto_aesni_gcm%d\ndpdk vdev crypto_aesni_mb%d\n", n, n)
			}
			x := newLab(t, manualSpec(t, e2eCase{transform: tr, mode: ipsec.Tunnel, udp: true,
				extraA: "  tunnel driver dpdk\n" + devs(2*i), extraB: "  tunnel driver dpdk\n" + devs(2*i+1)}))
			for _, g := range []*Gateway{x.ga, x.gb} {
				if snap := g.Snapshot(); snap.Datapaths.Buffers == "" {
					t.Fatalf("no driver buffer pool: packets are not in DPDK memory (drivers %v)", snap.Datapaths.Drivers)
				}
				text, _, _ := g.Exec("show ipsec sa")
				if strings.Count(text, "driver dpdk") != 2 {
					t.Fatalf("SAs not on DPDK:\n%s", text)
				}
			}
			if err := x.ping(t, 3); err != nil {
				t.Fatal(err)
			}
			x.transfer(t, 1<<20)
			if fb := x.ga.Statistics().Fallbacks; fb["fault"]+fb["queue-full"] != 0 {
				t.Errorf("work fell back to the software engine: %v", fb)
			}
		})
	}
}
