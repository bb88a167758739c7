package ism

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
)

// swanUpCase is a case that brings a tunnel up: both sides' configuration
// for a role, and what the show commands must say once traffic went
// through.
type swanUpCase struct {
	name  string
	setup func(t *testing.T, role string) (ismConf, swanPeer, swantest.Conf)
	// detail and ikesa are strings `show ipsec tunnel detail` and `show
	// ike sa` must contain; the detail always names the peer's address.
	detail, ikesa []string
}

func runSwanUpCases(t *testing.T, cases []swanUpCase) {
	for _, c := range cases {
		for _, role := range swanRoles {
			t.Run(c.name+"/"+role, func(t *testing.T) {
				t.Parallel()
				side, peer, conf := c.setup(t, role)
				x := newLab(t, swanSpec(side, peer, conf))
				if _, err := netip.ParseAddr(side.tunnels[0].dest); side.tunnels[0].dest != "" && err != nil {
					// Only the peer can start a tunnel to an FQDN: show says so.
					x.wantShow(t, "show ipsec tunnel detail", "is down", "the peer starts them",
						"none, waiting for the peer to start them (its destination is known only by its identity)")
				}
				x.bringUp(t, role)
				x.traffic(t, ismHost, swanHost)
				x.wantShow(t, "show ipsec tunnel detail", append([]string{"is up", "IKE SA (phase 1) with " + peer.addr() + ":4500: established", "Child SAs (phase 2): up"}, c.detail...)...)
				x.wantShow(t, "show ike sa", c.ikesa...)
				if rows := x.ikeSARows(t); len(rows) != 1 {
					t.Errorf("show ike sa: %d IKE SAs, want 1:\n%s", len(rows), strings.Join(rows, "\n"))
				}
			})
		}
	}
}

// TestSwanIdentities: IKEv1 with FQDN and user@fqdn identities in
// aggressive mode and with RSA signatures, ISM as initiator and as
// responder against charon, then ping and TCP through the tunnel.
func TestSwanIdentities(t *testing.T) {
	t.Parallel()
	runSwanUpCases(t, []swanUpCase{
		{
			// As responder ISM's tunnel destination is the branch's FQDN:
			// it accepts the peer at whatever address authenticates with
			// that identity (here one no configuration names), and sends
			// to that address.
			name: "aggressive-fqdn",
			setup: func(t *testing.T, role string) (ismConf, swanPeer, swantest.Conf) {
				tu := ismTunnel{extra: fmt.Sprintf("  tunnel local-identity %s\n  tunnel ike-mode aggressive\n", gwFQDN)}
				peer := swanPeer{Aggressive: true, Proposals: "aes128-sha1-modp2048", ESP: "aes128-sha1", LocalID: branchFQDN, RemoteID: gwFQDN}
				if role == "responder" {
					tu.dest, peer.Addr = branchFQDN, "192.0.2.77"
				} else {
					tu.extra += "  tunnel remote-identity " + branchFQDN + "\n"
				}
				return ismConf{global: pskRule("aes128", "sha", 14, branchFQDN), transforms: []string{"esp-aes128-hmac-sha"}, tunnels: []ismTunnel{tu}},
					peer, swantest.Conf{}
			},
			detail: []string{"esp-aes128-hmac-sha, no PFS"},
			ikesa:  []string{branchFQDN, "aggressive"},
		},
		{
			// ISM has a key only for the FQDN: the peer's user@fqdn
			// identity finds it on the second lookup, stripped of user@.
			name: "user-fqdn-stripped",
			setup: func(t *testing.T, role string) (ismConf, swanPeer, swantest.Conf) {
				tu := ismTunnel{extra: fmt.Sprintf("  tunnel local-identity %s\n  tunnel remote-identity %s\n  tunnel ike-mode aggressive\n", gwFQDN, branchUser)}
				if role == "responder" {
					tu.dest = branchFQDN
				}
				return ismConf{global: pskRule("aes256", "sha256", 14, branchFQDN), transforms: []string{"esp-aes256-hmac-sha"}, tunnels: []ismTunnel{tu}},
					swanPeer{Aggressive: true, Proposals: "aes256-sha256-modp2048", ESP: "aes256-sha1", LocalID: branchUser, RemoteID: gwFQDN},
					swantest.Conf{}
			},
			detail: []string{"esp-aes256-hmac-sha"},
			ikesa:  []string{branchUser, "aggressive"},
		},
		{
			// Main mode with RSA signatures: a CA made by the test,
			// ISM's certificate, key and CA in files the config names.
			name: "rsa-signature",
			setup: func(t *testing.T, role string) (ismConf, swanPeer, swantest.Conf) {
				pki := swantest.NewPKI(t)
				ismCert, ismKey := pki.Issue(t, 2, gwFQDN, net.IP(swantest.ISMAddr.AsSlice()))
				swanCert, swanKey := pki.Issue(t, 3, branchFQDN, net.IP(swantest.SwanAddr.AsSlice()))
				dir := t.TempDir()
				files := map[string][]byte{"ism.pem": swantest.CertPEM(ismCert), "ism.key": swantest.KeyPEM(ismKey), "ca.pem": swantest.CertPEM(pki.CA)}
				for name, b := range files {
					if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				global := fmt.Sprintf("ipsec isakmp-policy-rule 1\n  encryption aes128\n  hash sha256\n  group 14\n  authentication rsa-signature\n"+
					"ipsec local-certificate %s key %s\nipsec ca-certificate %s\n",
					filepath.Join(dir, "ism.pem"), filepath.Join(dir, "ism.key"), filepath.Join(dir, "ca.pem"))
				tu := ismTunnel{extra: fmt.Sprintf("  tunnel local-identity %s\n  tunnel remote-identity %s\n", gwFQDN, branchFQDN)}
				return ismConf{global: global, transforms: []string{"esp-aes128-hmac-sha256"}, tunnels: []ismTunnel{tu}},
					swanPeer{Auth: "pubkey", Cert: "swan.pem", Proposals: "aes128-sha256-modp2048", ESP: "aes128-sha256",
						LocalID: branchFQDN, RemoteID: gwFQDN, Secrets: []charon.Secret{{Name: "rsa-1", File: "swan.pem"}}},
					swantest.Conf{Files: map[string][]byte{"x509ca/ca.pem": swantest.CertPEM(pki.CA),
						"x509/swan.pem": swantest.CertPEM(swanCert), "rsa/swan.pem": swantest.KeyPEM(swanKey)}}
			},
			detail: []string{"esp-aes128-hmac-sha256"},
			ikesa:  []string{branchFQDN, "main"},
		},
	})
}
