package v2

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/swantest"
)

// Certificate authentication against charon, each case with ISM as
// initiator and as responder. Certificates are made by the test
// (swantest's CAs) and written where swanctl reads them: x509ca/ for
// trusted and intermediate CAs, x509/ for charon's own certificate, rsa/
// or ecdsa/ for its key.

const (
	ismFQDN  = "ism.example.net"
	swanFQDN = "swan.example.net"
)

// certEnd is one end's certificate, key and chain.
type certEnd struct {
	certs *ike.Certificates
	id    ike.Identity
}

// issueEnd issues a certificate naming id from ca.
func issueEnd(t *testing.T, ca *swantest.CA, id ike.Identity, key swantest.KeySpec) certEnd {
	s := swantest.LeafSpec{CommonName: id.Name, Key: key, Validity: swantest.Around(time.Now())}
	if id.Kind == ike.IDUserFQDN {
		s.Emails = []string{id.Name}
	} else {
		s.DNSNames = []string{id.Name}
	}
	c, k := ca.Issue(t, s)
	return certEnd{certs: &ike.Certificates{Chain: ca.Chain(c), Key: k}, id: id}
}

// certCase is charon's files and connection, and ISM's configuration,
// for one certificate test.
type certCase struct {
	ism, swan certEnd
	ismCAs    []*x509.Certificate // ISM trusts
	swanCAs   []*x509.Certificate // charon trusts (and may send: its intermediates)
	conn      swanConn
	charon    string // strongswan.conf lines inside charon { }
	policy    ike.Policy
}

// config returns ISM's configuration: one policy, the tunnel with the
// identities.
func (c certCase) config(t *testing.T) ike.Config {
	certs := *c.ism.certs
	certs.CAs = c.ismCAs
	pol := c.policy
	if pol.Encryption == 0 {
		pol = ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Group: 14}
	}
	pol.Auth = ike.AuthRSASig
	if _, ok := certs.Key.Public().(*ecdsa.PublicKey); ok {
		pol.Auth = ike.AuthECDSASig
	}
	cfg := ike.Config{Policies: []ike.Policy{pol}, Certificates: &certs}
	tu := interopTunnel(t, "esp-aes128-gcm16")
	tu.LocalID, tu.RemoteID = c.ism.id, c.swan.id
	cfg.Tunnels = []ike.Tunnel{tu}
	return cfg
}

// conf returns charon's configuration and files.
func (c certCase) conf(t *testing.T) swantest.Conf {
	files := map[string][]byte{"x509/swan.pem": swantest.CertPEM(c.swan.certs.Chain[0])}
	for i, ca := range c.swanCAs {
		files["x509ca/ca"+string(rune('0'+i))+".pem"] = swantest.CertPEM(ca)
	}
	name, pem := swantest.KeyFile(t, "swan", c.swan.certs.Key)
	files[name] = pem
	sc := c.conn
	if sc.Proposals == "" {
		sc.Proposals, sc.ESPProposals = "aes128-sha256-modp2048", "aes128gcm16"
	}
	if sc.Auth == "" {
		sc.Auth = "pubkey"
	}
	sc.LocalCert, sc.LocalID, sc.RemoteID, sc.NoSecrets = "swan.pem", c.swan.id.Name, c.ism.id.Name, true
	return swantest.Conf{Swanctl: sc.render(), Files: files, Charon: c.charon}
}

// run brings the tunnel up and checks the keys against charon's, and
// returns ISM's IKE SA's signature schemes.
func (c certCase) run(t *testing.T, ismInit bool) (*interop, sigScheme, sigScheme) {
	cfg := c.config(t)
	logToTest(t, &cfg)
	x := newInteropIn(t, swantest.New(t), cfg, c.conf(t))
	x.up(t, ismInit)
	x.check(t, swanWant{encr: "AES_CBC", keysize: "128", integ: "HMAC_SHA2_256_128", prf: "PRF_HMAC_SHA2_256", dh: "MODP_2048",
		espEncr: "AES_GCM_16", espKeysize: "128"})
	sa := onlyIKESA(t, &side{d: x.d})
	sa.lock()
	defer sa.mu.Unlock()
	if sa.remoteID.String() != c.swan.id.String() || sa.authMethod != cfg.Policies[0].Auth {
		t.Errorf("ISM's IKE SA: peer %v, method %v", sa.remoteID, sa.authMethod)
	}
	if sa.schemes == nil {
		return x, sigScheme{}, sigScheme{}
	}
	return x, sa.schemes.own, sa.schemes.peer
}

var (
	interopRoot = lazyCA(func(t *testing.T) *swantest.CA {
		return swantest.NewRootCA(t, "ISM interop root", swantest.KeySpec{RSABits: 2048}, swantest.Around(time.Now()))
	})
	rsa2k = swantest.KeySpec{RSABits: 2048}
)

// lazyCA makes a CA once per test binary, for the tests that share it.
func lazyCA(mk func(t *testing.T) *swantest.CA) func(t *testing.T) *swantest.CA {
	var once sync.Once
	var ca *swantest.CA
	return func(t *testing.T) *swantest.CA {
		once.Do(func() { ca = mk(t) })
		return ca
	}
}

// TestInteropCertRSA: RSA certificates with FQDN identities; both ends
// sign RFC 7427 PKCS #1 v1.5 with SHA-256 (charon's default for its key).
func TestInteropCertRSA(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		root := interopRoot(t)
		c := certCase{ism: issueEnd(t, root, ike.Identity{Kind: ike.IDFQDN, Name: ismFQDN}, rsa2k),
			swan:   issueEnd(t, root, ike.Identity{Kind: ike.IDFQDN, Name: swanFQDN}, rsa2k),
			ismCAs: []*x509.Certificate{root.Cert}, swanCAs: []*x509.Certificate{root.Cert}}
		_, own, peer := c.run(t, ismInit)
		for _, s := range []sigScheme{own, peer} {
			if s.method != AuthDigSig || s.ecdsa || s.pss || s.hash != crypto.SHA256 {
				t.Errorf("scheme %v, want RFC 7427 rsa-sha256", s)
			}
		}
	})
}

// TestInteropCertRSAPSS: RSASSA-PSS both ways: ISM configured for it,
// charon requiring it of ISM (remote auth = ike:rsa/pss-sha256) and signing
// with it (charon.rsa_pss).
func TestInteropCertRSAPSS(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		root := interopRoot(t)
		c := certCase{ism: issueEnd(t, root, ike.Identity{Kind: ike.IDFQDN, Name: ismFQDN}, rsa2k),
			swan:   issueEnd(t, root, ike.Identity{Kind: ike.IDFQDN, Name: swanFQDN}, rsa2k),
			ismCAs: []*x509.Certificate{root.Cert}, swanCAs: []*x509.Certificate{root.Cert},
			conn: swanConn{RemoteAuth: "ike:rsa/pss-sha256"}, charon: "rsa_pss = yes"}
		c.ism.certs.RSAPSS = true
		_, own, peer := c.run(t, ismInit)
		for _, s := range []sigScheme{own, peer} {
			if s.method != AuthDigSig || !s.pss || s.hash != crypto.SHA256 {
				t.Errorf("scheme %v, want RFC 7427 rsa/pss-sha256", s)
			}
		}
	})
}

// TestInteropCertECDSA: ISM on P-256, charon on P-384, RFC 7427 ECDSA with
// each curve's hash; user@fqdn identities in the rfc822Name
// subjectAltName.
func TestInteropCertECDSA(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		root := interopRoot(t)
		c := certCase{ism: issueEnd(t, root, ike.Identity{Kind: ike.IDUserFQDN, Name: "gw@" + ismFQDN}, swantest.KeySpec{Curve: elliptic.P256()}),
			swan:   issueEnd(t, root, ike.Identity{Kind: ike.IDUserFQDN, Name: "branch7@" + swanFQDN}, swantest.KeySpec{Curve: elliptic.P384()}),
			ismCAs: []*x509.Certificate{root.Cert}, swanCAs: []*x509.Certificate{root.Cert},
		}
		_, own, peer := c.run(t, ismInit)
		if own.method != AuthDigSig || !own.ecdsa || own.hash != crypto.SHA256 {
			t.Errorf("ISM signed with %v, want RFC 7427 ecdsa-sha256", own)
		}
		if peer.method != AuthDigSig || !peer.ecdsa || peer.hash != crypto.SHA384 {
			t.Errorf("charon signed with %v, want RFC 7427 ecdsa-sha384", peer)
		}
	})
}

// TestInteropCertClassic: charon without RFC 7427
// (charon.signature_authentication = no): the classic methods, RSA (1)
// from ISM and ECDSA P-256 (9) from charon.
func TestInteropCertClassic(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		root := interopRoot(t)
		c := certCase{ism: issueEnd(t, root, ike.Identity{Kind: ike.IDFQDN, Name: ismFQDN}, rsa2k),
			swan:   issueEnd(t, root, ike.Identity{Kind: ike.IDFQDN, Name: swanFQDN}, swantest.KeySpec{Curve: elliptic.P256()}),
			ismCAs: []*x509.Certificate{root.Cert}, swanCAs: []*x509.Certificate{root.Cert},
			charon: "signature_authentication = no"}
		_, own, peer := c.run(t, ismInit)
		if own.method != AuthRSASig || peer.method != AuthECDSAP256 {
			t.Errorf("schemes %v and %v, want methods 1 and 9", own, peer)
		}
	})
}

// TestInteropCertIntermediate: each end's certificate comes from its own
// intermediate CA under a common root. charon trusts the root and holds
// its own intermediate; ISM trusts the root only: each sends its
// intermediate, and the other verifies the chain through it.
func TestInteropCertIntermediate(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		root := interopRoot(t)
		ismCA := root.Intermediate(t, "ISM gateways CA", rsa2k, swantest.Around(time.Now()))
		swanCA := root.Intermediate(t, "branch offices CA", swantest.KeySpec{Curve: elliptic.P256()}, swantest.Around(time.Now()))
		c := certCase{ism: issueEnd(t, ismCA, ike.Identity{Kind: ike.IDFQDN, Name: ismFQDN}, rsa2k),
			swan:   issueEnd(t, swanCA, ike.Identity{Kind: ike.IDFQDN, Name: swanFQDN}, rsa2k),
			ismCAs: []*x509.Certificate{root.Cert}, swanCAs: []*x509.Certificate{root.Cert, swanCA.Cert}}
		x, _, _ := c.run(t, ismInit)
		log := x.env.Log()
		for _, want := range []string{`received issuer cert "O=ISM test, CN=ISM gateways CA"`, `sending issuer cert "O=ISM test, CN=branch offices CA"`} {
			if !strings.Contains(log, want) {
				t.Errorf("charon's log lacks %s", want)
			}
		}
	})
}

var otherRoot = lazyCA(func(t *testing.T) *swantest.CA {
	return swantest.NewRootCA(t, "somebody else's root", swantest.KeySpec{RSABits: 2048}, swantest.Around(time.Now()))
})

// TestInteropCertWrongCA: a certificate from a CA the other end does not
// trust is refused, whichever end has it and whichever initiates: the
// checking end says why, the other hears AUTHENTICATION_FAILED, and
// neither keeps an SA.
func TestInteropCertWrongCA(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"CharonCert", "ISMCert"} {
		t.Run(bad, func(t *testing.T) {
			t.Parallel()
			roles(t, func(t *testing.T, ismInit bool) {
				root := interopRoot(t)
				ism, swan := ike.Identity{Kind: ike.IDFQDN, Name: ismFQDN}, ike.Identity{Kind: ike.IDFQDN, Name: swanFQDN}
				c := certCase{ism: issueEnd(t, root, ism, rsa2k), swan: issueEnd(t, root, swan, rsa2k),
					ismCAs: []*x509.Certificate{root.Cert}, swanCAs: []*x509.Certificate{root.Cert}}
				if bad == "CharonCert" {
					c.swan = issueEnd(t, otherRoot(t), swan, rsa2k)
				} else {
					c.ism = issueEnd(t, otherRoot(t), ism, rsa2k)
				}
				cfg := c.config(t)
				logs := logToTest(t, &cfg)
				x := newInteropIn(t, swantest.New(t), cfg, c.conf(t))
				if ismInit {
					x.d.Acquire("t1")
					e := waitEvent(t, x.lis, "failed", "t1")
					want := map[string]string{"CharonCert": "not signed by a trusted CA", "ISMCert": "AUTHENTICATION_FAILED"}[bad]
					if !strings.Contains(e.Reason, want) {
						t.Errorf("ISM's failure %q does not say %q", e.Reason, want)
					}
				} else {
					out, err := x.env.Initiate("net", 15*time.Second)
					if err == nil {
						t.Errorf("charon's initiate succeeded:\n%s", out)
					}
				}
				waitFor(t, "ISM's refusal counted", func() bool { return x.d.Status().Counters.AuthFailed > 0 })
				if bad == "CharonCert" && !strings.Contains(logs.String(), "not signed by a trusted CA") {
					t.Error("ISM's log does not say why it refused charon's certificate")
				}
				if bad == "CharonCert" {
					waitFor(t, "charon told", func() bool { return strings.Contains(x.env.Log(), "AUTH_FAILED") })
				} else {
					waitFor(t, "charon refused ISM's certificate", func() bool {
						return strings.Contains(x.env.Log(), `no trusted RSA public key found for 'ism.example.net'`)
					})
				}
				waitFor(t, "no SAs at ISM", func() bool { return len(x.inst.SAs()) == 0 && len(x.d.Status().IKESAs) == 0 })
				deadline := time.Now().Add(10 * time.Second)
				for {
					sas, err := x.env.ListSAs()
					if err != nil {
						t.Fatal(err)
					}
					if len(sas) == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("charon still has IKE SAs: %+v", sas)
					}
					time.Sleep(200 * time.Millisecond)
				}
			})
		})
	}
}
