package ism

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest"
)

// swanPSK is the pre-shared key of the strongSwan tests.
const swanPSK = "interop-psk-0123456789"

// swanCase is ISM (in process, namespace NSISM) against charon (NSSwan): the
// ISM side's configuration lines and charon's swanctl.conf.
type swanCase struct {
	name       string
	ism        string // policy rules, keys and the tunnel block's extra lines
	tunnel     string // extra lines in the interface block
	transforms []string
	swan       string // swanctl.conf
	aggressive bool
	files      map[string][]byte
}

// swanConn renders charon's side: one connection "ism" with a child "net"
// for 203.0.113.0/24 (charon) and 198.51.100.0/24 (ISM).
func swanConn(proposals, esp, extra, local, remote, secrets string) string {
	if local == "" {
		local = swantest.SwanAddr.String()
	}
	if remote == "" {
		remote = swantest.ISMAddr.String()
	}
	if secrets == "" {
		secrets = fmt.Sprintf("ike-1 {\n id-a = %s\n id-b = %s\n secret = %q\n}\n", local, remote, swanPSK)
	}
	return fmt.Sprintf(`connections {
  ism {
    version = 1
    local_addrs = %s
    remote_addrs = %s
    proposals = %s
    rekey_time = 0
    %s
    local {
      auth = psk
      id = %s
    }
    remote {
      auth = psk
      id = %s
    }
    children {
      net {
        local_ts = 203.0.113.0/24
        remote_ts = 198.51.100.0/24
        esp_proposals = %s
        mode = tunnel
        start_action = none
      }
    }
  }
}
secrets {
%s
}
`, swantest.SwanAddr, swantest.ISMAddr, proposals, extra, local, remote, esp, secrets)
}

// swanCaseSpec is the lab of a swanCase.
func swanCaseSpec(c swanCase) labSpec {
	side := ismConf{global: c.ism, transforms: c.transforms,
		tunnels: []ismTunnel{{local: "198.51.100.0 255.255.255.0", remote: "203.0.113.0 255.255.255.0", extra: c.tunnel}}}
	return labSpec{charon: &swantest.Conf{Swanctl: c.swan, AggressivePSK: c.aggressive, Files: c.files},
		a: func(x *lab) string { return side.signaled(x.a).String() }}
}

// pingFromISM pings charon's side through the tunnel; the first packets
// start the negotiation, so it retries for a while.
func (x *lab) pingFromISM(t *testing.T, n int) {
	t.Helper()
	x.pingUntil(t, x.env.NSISM, "198.51.100.1", "203.0.113.1", n)
}

func (x *lab) pingUntil(t *testing.T, ns, src, dst string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// -w: ping goes on sending until n echoes are answered (or 10 s
		// pass), so that a lost echo does not leave the counters short.
		out, err := runIn(ns, "ping", "-c", fmt.Sprint(n), "-i", "0.2", "-w", "10", "-I", src, dst)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			text, _, _ := x.g.Exec("show ipsec tunnel detail")
			t.Fatalf("ping %s -> %s through the tunnel: %v\n%s\n%s", src, dst, err, out, text)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestSignaledAgainstStrongSwan: ISM negotiates with charon, as initiator
// (the first packet starts IKE) and as responder (charon initiates), then
// ping and a TCP transfer go through the tunnel.
func TestSignaledAgainstStrongSwan(t *testing.T) {
	t.Parallel()
	psk := fmt.Sprintf("ipsec pre-shared-key address %s ascii %s\n", swantest.SwanAddr, swanPSK)
	rule := func(enc, hash string, group int) string {
		return fmt.Sprintf("ipsec isakmp-policy-rule 1\n  encryption %s\n  hash %s\n  group %d\n  authentication pre-shared-key\n", enc, hash, group)
	}
	cases := []swanCase{
		{name: "main-psk-3des-g2", ism: rule("3des", "sha", 2) + psk, transforms: []string{"esp-3des-hmac-sha"},
			swan: swanConn("3des-sha1-modp1024", "3des-sha1", "", "", "", "")},
		{name: "main-psk-aes128-pfs5", ism: rule("aes128", "sha", 2) + psk, tunnel: "  tunnel pfs group 5\n",
			transforms: []string{"esp-aes128-hmac-sha"}, swan: swanConn("aes128-sha1-modp1024", "aes128-sha1-modp1536", "", "", "", "")},
		{name: "aes256-sha256-g14-gcm", ism: rule("aes256", "sha256", 14) + psk, transforms: []string{"esp-aes256-gcm16"},
			swan: swanConn("aes256-sha256-modp2048", "aes256gcm16", "", "", "", "")},
		{name: "second-transform-chosen", ism: rule("aes128", "sha", 2) + psk, transforms: []string{"esp-des-hmac-md5", "esp-aes128-gcm16"},
			swan: swanConn("aes128-sha1-modp1024", "aes128gcm16", "", "", "", "")},
	}
	for _, c := range cases {
		for _, role := range []string{"initiator", "responder"} {
			t.Run(c.name+"/"+role, func(t *testing.T) {
				t.Parallel()
				x := newLab(t, swanCaseSpec(c))
				if role == "responder" {
					if out, err := x.env.Initiate("net", 15*time.Second); err != nil {
						t.Fatalf("charon initiate: %v\n%s", err, out)
					}
					x.pingUntil(t, x.env.NSSwan, "203.0.113.1", "198.51.100.1", 3)
				} else {
					x.pingFromISM(t, 3)
				}
				tun := x.g.tunnels["t1"]
				if !tun.Up() {
					t.Fatalf("tunnel not up: %s", tun.Reason())
				}
				transferBetween(t, x.env.NSISM, "198.51.100.1", x.env.NSSwan, "203.0.113.1", 1<<20)
				if want := c.transforms[len(c.transforms)-1]; tun.transform().Name() != want {
					t.Errorf("negotiated %s, want %s", tun.transform().Name(), want)
				}
				detail, _, _ := x.g.Exec("show ipsec tunnel detail")
				ikesa, _, _ := x.g.Exec("show ike sa")
				for _, w := range []string{"IKE SA (phase 1) with 192.0.2.2:4500: established", "Child SAs (phase 2): up, 1 child SA pair, newest " + c.transforms[len(c.transforms)-1], "left, 0 rekeys"} {
					if !strings.Contains(detail, w) {
						t.Errorf("show ipsec tunnel detail lacks %q:\n%s", w, detail)
					}
				}
				if !strings.Contains(ikesa, "192.0.2.2:4500") || !strings.Contains(ikesa, "nat-t") {
					t.Errorf("show ike sa: want the IKE SA with the peer on 4500 (NAT-T):\n%s", ikesa)
				}
			})
		}
	}
}
