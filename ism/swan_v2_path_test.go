package ism

import (
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v2 "github.com/ismgw/ism/ike/v2"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/netns"
)

// The IKEv2 path lab (TestSwanV2Path): what a gateway meets on a hostile
// path, in one exchange sequence per role. Certificates (ISM's under two
// intermediates it sends along, RFC 7427 signatures both ways), a 576-byte
// path so that IKE_AUTH crosses it in fragments (RFC 7383), cookies
// demanded by whichever end responds (RFC 7296 §2.6), and a charon that
// restarts and comes back with INITIAL_CONTACT.

const (
	v2PathMTU = 576
	ismFQDN   = "ism.example.net"
	swanFQDN  = "swan.example.net"
)

// v2PathCerts are a role's certificates: in the initiator role ISM signs
// with RSA and charon with ECDSA P-256, in the responder role the other
// way round; ISM's chain always holds two intermediates and a certificate
// with many names, a few kilobytes that no 576-byte datagram holds.
type v2PathCerts struct {
	ismAuth string // ISM's policy rule's authentication
	ismDir  string // ISM's files: ism.pem (chain), ism.key, ca.pem
	files   map[string][]byte
	// ismScheme and swanScheme are how charon's log names the RFC 7427
	// signature schemes of ISM's AUTH and its own.
	ismScheme, swanScheme string
}

func newV2PathCerts(t *testing.T, role string) v2PathCerts {
	v := swantest.Around(time.Now())
	rsa2k, p256 := swantest.KeySpec{RSABits: 2048}, swantest.KeySpec{Curve: elliptic.P256()}
	ismKey, swanKey := rsa2k, p256
	c := v2PathCerts{ismAuth: "rsa-signature", ismScheme: "RSA_EMSA_PKCS1_SHA2_256", swanScheme: "ECDSA_WITH_SHA256_DER"}
	if role == "responder" {
		ismKey, swanKey = p256, rsa2k
		c.ismAuth, c.ismScheme, c.swanScheme = "ecdsa-signature", "ECDSA_WITH_SHA256_DER", "RSA_EMSA_PKCS1_SHA2_256"
	}
	root := swantest.NewRootCA(t, "ISM gateway test root", rsa2k, v)
	inter := root.Intermediate(t, "ISM regional gateways CA with a long name for a big chain", rsa2k, v).
		Intermediate(t, "ISM hub gateways CA with a long name for a big chain", rsa2k, v)
	names := []string{ismFQDN}
	for i := range 20 {
		names = append(names, fmt.Sprintf("gateway-%02d.a-long-subdomain-name-for-a-big-certificate.%s", i, ismFQDN))
	}
	ismCert, ismSigner := inter.Issue(t, swantest.LeafSpec{CommonName: ismFQDN, DNSNames: names, Key: ismKey, Validity: v})
	swanCert, swanSigner := root.Issue(t, swantest.LeafSpec{CommonName: swanFQDN, DNSNames: []string{swanFQDN}, Key: swanKey, Validity: v})

	c.ismDir = t.TempDir()
	var chain []byte
	for _, cert := range inter.Chain(ismCert) {
		chain = append(chain, swantest.CertPEM(cert)...)
	}
	_, keyPEM := swantest.KeyFile(t, "ism", ismSigner)
	for name, b := range map[string][]byte{"ism.pem": chain, "ism.key": keyPEM, "ca.pem": swantest.CertPEM(root.Cert)} {
		if err := os.WriteFile(filepath.Join(c.ismDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keyName, swanKeyPEM := swantest.KeyFile(t, "swan", swanSigner)
	c.files = map[string][]byte{"x509ca/ca.pem": swantest.CertPEM(root.Cert), "x509/swan.pem": swantest.CertPEM(swanCert), keyName: swanKeyPEM}
	return c
}

// ismLines are ISM's global lines: the policy rules (group 14 first, then
// 19, which charon wants), the certificates, cookies always, fragments for
// the path.
func (c v2PathCerts) ismLines() string {
	var b strings.Builder
	for i, g := range []int{14, 19} {
		fmt.Fprintf(&b, "ipsec isakmp-policy-rule %d\n  encryption aes128\n  hash sha256\n  group %d\n  authentication %s\n", i+1, g, c.ismAuth)
	}
	fmt.Fprintf(&b, "ipsec local-certificate %s key %s\nipsec ca-certificate %s\n",
		filepath.Join(c.ismDir, "ism.pem"), filepath.Join(c.ismDir, "ism.key"), filepath.Join(c.ismDir, "ca.pem"))
	fmt.Fprintf(&b, "ipsec ike cookie-threshold 0\nipsec ike fragmentation mtu %d\n", v2PathMTU)
	return b.String()
}

// TestSwanV2Path: both roles over a 576-byte path with certificates. As
// initiator ISM meets charon demanding a cookie (charon's cookie_threshold
// is 1 and a half-open IKE SA is held open: charon turns cookies off at 0,
// so "always" is a threshold of one with one waiting), then INVALID_KE
// (charon wants ECP-256, ISM starts with MODP-2048); as responder ISM
// demands a cookie of charon (`ipsec ike cookie-threshold 0`). IKE_AUTH
// crosses in fragments each way, both ends sign per RFC 7427, pings go
// through each way; then charon is killed, started again and
// initiates: its INITIAL_CONTACT makes ISM drop the old IKE SA at once,
// and the tunnel is up on the new one.
func TestSwanV2Path(t *testing.T) {
	t.Parallel()
	for _, role := range swanRoles {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			certs := newV2PathCerts(t, role)
			side := ismConf{global: "ipsec ike-version 2\n" + certs.ismLines(), transforms: []string{"esp-aes128-gcm16"},
				tunnels: []ismTunnel{{extra: fmt.Sprintf("  tunnel local-identity %s\n  tunnel remote-identity %s\n", ismFQDN, swanFQDN)}}}
			peer := swanPeer{Version: 2, Auth: "pubkey", Cert: "swan.pem", Proposals: "aes128-sha256-ecp256", ESP: "aes128gcm16",
				LocalID: swanFQDN, RemoteID: ismFQDN}
			conf := swantest.Conf{Files: certs.files, Charon: fmt.Sprintf("fragment_size = %d\n  cookie_threshold = 1", v2PathMTU)}
			spec := swanSpec(side, peer, conf)
			spec.prepare = func(x *lab) {
				if err := x.env.SetMTU(v2PathMTU); err != nil {
					t.Fatal(err)
				}
			}
			x := newLab(t, spec)
			if role == "initiator" {
				holdHalfOpen(t, x)
			}
			x.bringUp(t, role)
			x.pingUntil(t, x.env.NSSwan, swanHost, ismHost, 3)

			v2c := x.g.Statistics().IKEVersions["ikev2"]
			log := x.env.Log()
			if role == "initiator" {
				if v2c.CookiesReceived < 1 || v2c.InvalidKE < 1 {
					t.Errorf("ISM received %d cookies and %d INVALID_KE, want both", v2c.CookiesReceived, v2c.InvalidKE)
				}
				x.wantShow(t, "show ike sa", "received", "ecp256")
			} else {
				if v2c.CookiesSent < 1 || !strings.Contains(log, "received COOKIE notify") {
					t.Errorf("ISM sent %d cookies; charon's log says it got one: %v", v2c.CookiesSent, strings.Contains(log, "received COOKIE notify"))
				}
				x.wantShow(t, "show ike sa", "1 sent")
			}
			if v2c.FragmentsSent < 3 || v2c.FragmentsReceived < 2 || !strings.Contains(log, "reassembled fragmented IKE message") {
				t.Errorf("fragments: ISM sent %d, received %d; charon reassembled: %v", v2c.FragmentsSent, v2c.FragmentsReceived,
					strings.Contains(log, "reassembled fragmented IKE message"))
			}
			for id, scheme := range map[string]string{ismFQDN: certs.ismScheme, swanFQDN: certs.swanScheme} {
				if m := authRE(id).FindStringSubmatch(log); m == nil || m[1] != scheme {
					t.Errorf("charon's log: %s authenticated with %v, want the RFC 7427 scheme %s", id, m, scheme)
				}
			}
			// NAT-T: charon's libipsec fakes a NAT (its NAT_DETECTION hash
			// never matches), so IKE floated to 4500 and ESP rides in UDP.
			x.wantShow(t, "show ipsec tunnel detail", "IKEv2: up with 192.0.2.2:4500",
				"authentication "+strings.TrimSuffix(certs.ismAuth, "nature")+", NAT remote")

			// charon restarts: the old IKE SA is gone from its memory, not
			// from ISM's, until INITIAL_CONTACT.
			old := x.ikeSARows(t)
			x.env.Kill()
			x.env.StartCharon(x.primaryConf)
			if out, err := x.env.Initiate("net", 20*time.Second); err != nil {
				t.Fatalf("charon initiate after its restart: %v\n%s", err, out)
			}
			x.waitFor(t, 10*time.Second, "the old IKE SA dropped", func() bool {
				rows := x.ikeSARows(t)
				return len(rows) == 1 && len(old) == 1 && rows[0] != old[0] && strings.Contains(rows[0], "responder")
			})
			if !strings.Contains(x.env.Log(), "N(INIT_CONTACT)") {
				t.Error("charon's log shows no INITIAL_CONTACT in its IKE_AUTH")
			}
			x.pingUntil(t, x.env.NSISM, ismHost, swanHost, 3)
			x.pingUntil(t, x.env.NSSwan, swanHost, ismHost, 3)
		})
	}
}

// authRE finds charon's "authentication of 'ID' with SCHEME successful".
func authRE(id string) *regexp.Regexp {
	return regexp.MustCompile(`authentication of '` + regexp.QuoteMeta(id) + `' (?:\(myself\) )?with (\S+) successful`)
}

// holdHalfOpen sends charon an IKE_SA_INIT from ISM's namespace (not from
// ISM: from a port of its own) that it answers and then waits on for
// IKE_AUTH, a half-open IKE SA that, with cookie_threshold 1, makes
// charon demand cookies of every IKE_SA_INIT until it times out (30 s).
func holdHalfOpen(t *testing.T, x *lab) {
	t.Helper()
	var conn *net.UDPConn
	err := netns.Do(x.env.NSISM, func() (err error) {
		conn, err = net.DialUDP("udp4", &net.UDPAddr{IP: net.IP(swantest.ISMAddr.AsSlice())},
			&net.UDPAddr{IP: net.IP(swantest.SwanAddr.AsSlice()), Port: 500})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(rawIKESAInit(t)); err != nil {
		t.Fatal(err)
	}
	x.waitFor(t, 10*time.Second, "charon's half-open IKE SA", func() bool {
		return strings.Contains(x.env.Log(), "generating IKE_SA_INIT response 0 [ SA KE No")
	})
}

// rawIKESAInit is an IKE_SA_INIT request with one proposal charon takes
// (AES-CBC-128, PRF and integrity HMAC-SHA2-256, ECP-256) and a key of
// ECP-256 (RFC 7296 §3.3 and §3.4; RFC 5903 §7: x and y, no prefix).
func rawIKESAInit(t *testing.T) []byte {
	t.Helper()
	transform := func(last bool, typ, id byte, attr []byte) []byte {
		b := make([]byte, 8, 8+len(attr))
		if !last {
			b[0] = 3
		}
		binary.BigEndian.PutUint16(b[2:], uint16(8+len(attr)))
		b[4], b[7] = typ, id
		return append(b, attr...)
	}
	ts := append(transform(false, 1, 12, []byte{0x80, 0x0e, 0, 128}), transform(false, 2, 5, nil)...)
	ts = append(ts, transform(false, 3, 12, nil)...)
	ts = append(ts, transform(true, 4, 19, nil)...)
	prop := make([]byte, 8, 8+len(ts))
	binary.BigEndian.PutUint16(prop[2:], uint16(8+len(ts)))
	prop[4], prop[5], prop[7] = 1, 1, 4
	prop = append(prop, ts...)

	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ke := append([]byte{0, 19, 0, 0}, key.PublicKey().Bytes()[1:]...)
	nonce := make([]byte, 32)
	rand.Read(nonce)
	var spi [8]byte
	rand.Read(spi[:])
	m := v2.Message{Header: v2.Header{SPIi: binary.BigEndian.Uint64(spi[:]), Version: v2.Version, Exchange: v2.IKESAInit, Flags: v2.FlagInitiator},
		Payloads: []v2.Payload{{Type: v2.PayloadSA, Body: prop}, {Type: v2.PayloadKE, Body: ke}, {Type: v2.PayloadNonce, Body: nonce}}}
	return m.Marshal()
}
