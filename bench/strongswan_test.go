package bench

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/transform"
)

func TestSwanESP(t *testing.T) {
	want := map[string]string{
		"esp-aes128-gcm16":       "aes128gcm16",
		"esp-aes256-gcm8":        "aes256gcm8",
		"esp-aes128-hmac-sha":    "aes128-sha1",
		"esp-3des-hmac-md5":      "3des-md5",
		"esp-aes256-hmac-sha512": "aes256-sha512",
		"esp-null-hmac-sha256":   "null-sha256",
		"esp-chacha20-poly1305":  "chacha20poly1305",
	}
	for name, w := range want {
		tr, ok := transform.Lookup(name)
		if !ok {
			t.Fatalf("no transform %s", name)
		}
		if got, err := swanESP(tr); err != nil || got != w {
			t.Errorf("%s: %q, %v; want %q", name, got, err, w)
		}
	}
	ah, _ := transform.Lookup("ah-hmac-sha")
	if _, err := swanESP(ah); err == nil {
		t.Error("AH got a strongSwan ESP name")
	}
}

func TestIKEProposal(t *testing.T) {
	if got := DefaultIKE.swan(); got != "aes128-sha256-modp2048" {
		t.Errorf("default proposal %q", got)
	}
	if got := (IKE{Encryption: "3des", Hash: "sha", Group: 19}).swan(); got != "3des-sha1-ecp256" {
		t.Errorf("3des/sha/19: %q", got)
	}
	for _, bad := range []IKE{{"aes128", "sha256", 3, 1}, {"blowfish", "sha", 2, 1}, {"aes128", "sha512", 2, 2}, {"aes128", "sha256", 14, 3}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

// TestSignaledConfigParses: the gateway configurations the benchmarks
// build are valid, with one key per destination and a route per tunnel.
func TestSignaledConfigParses(t *testing.T) {
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	const n = 300
	var tunnels []signaledTunnel
	for i := range n {
		src, dst := endpoints(i, n)
		tunnels = append(tunnels, signaledTunnel{Name: "t" + string(rune('a'+i%26)) + strings.Repeat("x", i/26),
			Source: src, Destination: dst, Local: innerLocal, Remote: innerRemote(i)})
	}
	text := signaledConfig("ns0", DefaultIKE, newPSK(), tr, tunnels)
	cfg, err := config.Parse("bench.conf", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Tunnels) != n || len(cfg.Routes) != n || len(cfg.PreSharedKeys) != n {
		t.Fatalf("%d tunnels, %d routes, %d keys; want %d each", len(cfg.Tunnels), len(cfg.Routes), len(cfg.PreSharedKeys), n)
	}
	for _, tc := range cfg.Tunnels {
		if tc.Type != config.Signaled || tc.UDPEncapPort == 0 {
			t.Fatalf("%s: type %v, UDP port %d; want signaled, ESP in UDP", tc.Name, tc.Type, tc.UDPEncapPort)
		}
	}
	// The throughput benchmark's pair is valid too, with either IKE
	// version.
	for _, v := range []int{1, 2} {
		p := DefaultIKE
		p.Version = v
		for _, tu := range []signaledTunnel{tunnelAB, tunnelBA} {
			cfg, err := config.Parse("peer.conf", strings.NewReader(signaledConfig("ns0", p, newPSK(), tr, []signaledTunnel{tu})))
			if err != nil {
				t.Error(err)
			} else if cfg.IKEVersion != v {
				t.Errorf("IKE version %d configured as %d", v, cfg.IKEVersion)
			}
		}
	}
}

// TestAddressPlan: every tunnel of a setup run has its own endpoint pair
// and inner prefix; in a quick mode run all share one pair.
func TestAddressPlan(t *testing.T) {
	const n = 5000
	pairs := map[[2]netip.Addr]bool{}
	inner := map[netip.Prefix]bool{}
	for i := range n {
		a, b := endpoints(i, n)
		if !a.Is6() || !b.Is6() || !responderNet.Contains(b) || a != initiatorAddr {
			t.Fatalf("tunnel %d: %s to %s", i, a, b)
		}
		pairs[[2]netip.Addr{a, b}] = true
		p := innerRemote(i)
		if !innerRemoteAll.Contains(p.Addr()) {
			t.Fatalf("tunnel %d: inner %s outside %s", i, p, innerRemoteAll)
		}
		inner[p] = true
	}
	if len(pairs) != n || len(inner) != n {
		t.Errorf("%d endpoint pairs and %d inner prefixes for %d tunnels", len(pairs), len(inner), n)
	}
	a0, b0 := endpoints(0, 1)
	if a, b := endpoints(4321, 1); a != a0 || b != b0 {
		t.Errorf("one pair: tunnel 4321 has %s to %s, tunnel 0 %s to %s", a, b, a0, b0)
	}
}

func TestSwanctlConf(t *testing.T) {
	c := swanctlConf("k3y", peerConn(peerA, peerB, subnetA, subnetB, DefaultIKE, "aes128gcm16"))
	for _, want := range []string{"local_addrs = 192.0.2.1", "remote_addrs = 192.0.2.2", "proposals = aes128-sha256-modp2048",
		"local_ts = 198.51.100.0/24", "remote_ts = 203.0.113.0/24", "esp_proposals = aes128gcm16", "version = 1",
		`secret = "k3y"`} {
		if !strings.Contains(c, want) {
			t.Errorf("swanctl.conf lacks %q:\n%s", want, c)
		}
	}
	if strings.Count(c, "{") != strings.Count(c, "}") {
		t.Errorf("unbalanced braces:\n%s", c)
	}
}
