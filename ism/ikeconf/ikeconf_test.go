package ikeconf

import (
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/ism/config"
)

// TestIKEConfigIKEv2 maps the IKEv2 commands into ike.Config exactly as the
// configuration reference says: the policy algorithms, the hybrid, each
// tunnel's version, mode and ESN, fragmentation and the cookie threshold,
// and an ECDSA key in SEC 1 form.
func TestIKEConfigIKEv2(t *testing.T) {
	dir := t.TempDir()
	writePKI(t, dir, swantest.KeySpec{Curve: elliptic.P256()}, "EC PRIVATE KEY")
	text := `ipsec ike-version 2
ipsec ike fragmentation mtu 1280
ipsec ike cookie-threshold 0
ipsec transform-set ts
  transform 1 esp-chacha20-poly1305
ipsec isakmp-policy-rule 1
  encryption aes256-gcm
  prf sha384
  group 31
  additional-key-exchange mlkem768
  authentication ecdsa-signature
ipsec isakmp-policy-rule 2
  encryption aes128-gcm
  hash sha512
  group 20
  additional-key-exchange mlkem768 optional
ipsec isakmp-policy-rule 3
  encryption aes128
  hash sha384
  group 19
ipsec local-certificate gw.pem key gw.key
ipsec ca-certificate ca.pem
interface tunnel ipsec:t1
  tunnel mode transport
  tunnel source 192.0.2.1
  tunnel destination 192.0.2.2
  tunnel transform-set ts
  tunnel esn on
  tunnel pfs group 31
`
	c := parseIn(t, dir, text)
	ic, err := Build(c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []ike.Policy{
		{Encryption: ike.EncAES256GCM, Hash: ike.HashSHA1, PRF: ike.HashSHA384, Group: 31, AdditionalKE: []int{ike.MLKEM768},
			Auth: ike.AuthECDSASig, Lifetime: 8 * time.Hour},
		{Encryption: ike.EncAES128GCM, Hash: ike.HashSHA512, Group: 20, AdditionalKE: []int{ike.MLKEM768}, AdditionalKEOptional: true,
			Auth: ike.AuthPSK, Lifetime: 8 * time.Hour},
		{Encryption: ike.EncAES128, Hash: ike.HashSHA384, Group: 19, Auth: ike.AuthPSK, Lifetime: 8 * time.Hour},
	}
	if !reflect.DeepEqual(ic.Policies, want) {
		t.Errorf("policies\n got %+v\nwant %+v", ic.Policies, want)
	}
	tu := ic.Tunnels[0]
	if tu.Version != 2 || tu.SAMode.String() != "transport" || !tu.ESN || tu.PFSGroup != 31 {
		t.Errorf("tunnel: version %d, mode %v, ESN %v, PFS %d", tu.Version, tu.SAMode, tu.ESN, tu.PFSGroup)
	}
	if ic.FragmentMTU != 1280 || ic.CookieThreshold == nil || *ic.CookieThreshold != 0 || ic.CookieLimit() != 0 {
		t.Errorf("fragment MTU %d, cookie threshold %v", ic.FragmentMTU, ic.CookieThreshold)
	}
	if ic.Certificates == nil || ic.Certificates.RSAPSS {
		t.Fatalf("certificates %+v", ic.Certificates)
	}
	if err := ic.ValidateV2(); err != nil {
		t.Errorf("IKEv2 refuses the mapped configuration: %v", err)
	}
	if config.MinFragmentMTU != ike.MinFragmentMTU {
		t.Errorf("config.MinFragmentMTU %d, ike.MinFragmentMTU %d", config.MinFragmentMTU, ike.MinFragmentMTU)
	}
}

// TestIKEConfigKeyTypes: a key of the wrong type for a rule's signatures,
// or rsa-pss with an ECDSA key, is refused at the line that asks for it;
// an RSA key in PKCS #1 and in PKCS #8 form loads, with rsa-pss.
func TestIKEConfigKeyTypes(t *testing.T) {
	rule := func(auth string) string {
		return "ipsec ike-version 2\nipsec isakmp-policy-rule 1\n  encryption aes128\n  hash sha256\n  group 14\n  authentication " + auth + "\n"
	}
	const certs = "ipsec local-certificate gw.pem key gw.key%s\nipsec ca-certificate ca.pem\n"
	cases := []struct {
		name, text string
		key        swantest.KeySpec
		pemType    string
		err        string
	}{
		{"ecdsa-with-rsa-key", rule("ecdsa-signature") + strings.Replace(certs, "%s", "", 1), swantest.KeySpec{RSABits: 2048}, "RSA PRIVATE KEY",
			"test.conf:6: authentication: ecdsa-signature needs an ECDSA key"},
		{"rsa-with-ecdsa-key", rule("rsa-signature") + strings.Replace(certs, "%s", "", 1), swantest.KeySpec{Curve: elliptic.P384()}, "EC PRIVATE KEY",
			"test.conf:6: authentication: rsa-signature needs an RSA key"},
		{"pss-with-ecdsa-key", rule("ecdsa-signature") + strings.Replace(certs, "%s", " rsa-pss", 1), swantest.KeySpec{Curve: elliptic.P256()}, "PRIVATE KEY",
			"test.conf:7: ipsec local-certificate: rsa-pss needs an RSA key"},
		{"rsa-pkcs1-pss", rule("rsa-signature") + strings.Replace(certs, "%s", " rsa-pss", 1), swantest.KeySpec{RSABits: 2048}, "RSA PRIVATE KEY", ""},
		{"rsa-pkcs8", rule("rsa-signature") + strings.Replace(certs, "%s", "", 1), swantest.KeySpec{RSABits: 2048}, "PRIVATE KEY", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writePKI(t, dir, c.key, c.pemType)
			ic, err := Build(parseIn(t, dir, c.text), nil, nil)
			if c.err == "" {
				if err != nil || ic.Certificates == nil || ic.Certificates.RSAPSS != strings.Contains(c.text, "rsa-pss") {
					t.Fatalf("%v, %+v", err, ic.Certificates)
				}
				return
			}
			var ce config.Error
			if !errors.As(err, &ce) || !strings.HasPrefix(strings.TrimPrefix(err.Error(), dir+"/"), c.err) {
				t.Fatalf("error %v, want one starting %q", err, c.err)
			}
		})
	}
}

// parseIn parses text as dir/test.conf, so that its relative certificate
// paths are in dir.
func parseIn(t *testing.T, dir, text string) *config.Config {
	t.Helper()
	c, err := config.Parse(filepath.Join(dir, "test.conf"), strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writePKI writes ca.pem, gw.pem and gw.key (a key of spec, PEM type
// pemType) into dir.
func writePKI(t *testing.T, dir string, spec swantest.KeySpec, pemType string) {
	t.Helper()
	ca := swantest.NewRootCA(t, "ISM test CA", swantest.KeySpec{Curve: elliptic.P256()}, swantest.Around(time.Now()))
	cert, key := ca.Issue(t, swantest.LeafSpec{CommonName: "gw", DNSNames: []string{"gw.example.net"}, Key: spec, Validity: swantest.Around(time.Now())})
	var der []byte
	var err error
	switch pemType {
	case "PRIVATE KEY":
		der, err = x509.MarshalPKCS8PrivateKey(key)
	default:
		_, p := swantest.KeyFile(t, "gw", key)
		b, _ := pem.Decode(p)
		der = b.Bytes
	}
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"ca.pem": swantest.CertPEM(ca.Cert), "gw.pem": swantest.CertPEM(cert),
		"gw.key": pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIKEConfigRetransmit: "ipsec ike retransmit" reaches both IKE
// daemons' schedule; count 0 becomes IKE's "no resend", the default
// schedule IKE's defaults.
func TestIKEConfigRetransmit(t *testing.T) {
	for _, tc := range []struct {
		text string
		want ike.Retransmit
	}{
		{"", ike.Retransmit{Timeout: 2 * time.Second, Base: 1.8, Tries: 5}},
		{"ipsec ike retransmit count 3 timeout 500 base 2 cap 1500\n",
			ike.Retransmit{Timeout: 500 * time.Millisecond, Base: 2, Tries: 3, Cap: 1500 * time.Millisecond}},
		{"ipsec ike retransmit count 0 timeout 250\n", ike.Retransmit{Timeout: 250 * time.Millisecond, Base: 1.8, Tries: -1}},
	} {
		ic, err := Build(parseIn(t, t.TempDir(), tc.text), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ic.Retransmit != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.text, ic.Retransmit, tc.want)
		}
	}
}
