package ike

import (
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest"
)

var (
	certNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	p256    = swantest.KeySpec{Curve: elliptic.P256()}
)

// TestVerifyPeerCertificate: every refusal reason, and the identity forms
// a certificate names.
func TestVerifyPeerCertificate(t *testing.T) {
	root := swantest.NewRootCA(t, "root", p256, swantest.Around(certNow))
	inter := root.Intermediate(t, "intermediate", p256, swantest.Around(certNow))
	other := swantest.NewRootCA(t, "other", p256, swantest.Around(certNow))
	roots := x509.NewCertPool()
	roots.AddCert(root.Cert)
	good := swantest.LeafSpec{CommonName: "gw", DNSNames: []string{"gw.example.net"}, Emails: []string{"ops@gw.example.net"},
		IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}, Key: p256, Validity: swantest.Around(certNow)}
	leaf, _ := inter.Issue(t, good)
	chain := inter.Chain(leaf)
	for _, id := range []Identity{
		{Kind: IDFQDN, Name: "GW.example.net"},
		{Kind: IDUserFQDN, Name: "ops@gw.example.net"},
		AddressIdentity(netip.MustParseAddr("192.0.2.1")),
		AddressIdentity(netip.MustParseAddr("2001:db8::1")),
		{Kind: IDDN, Name: string(leaf.RawSubject)},
	} {
		if got, err := VerifyPeerCertificate(chain, roots, certNow, id); err != nil || got != leaf {
			t.Errorf("%v: %v", id, err)
		}
	}
	expired := good
	expired.Validity = swantest.Validity{NotBefore: certNow.Add(-48 * time.Hour), NotAfter: certNow.Add(-time.Hour)}
	old, _ := inter.Issue(t, expired)
	encipher := good
	encipher.KeyUsage = x509.KeyUsageKeyEncipherment
	noSign, _ := inter.Issue(t, encipher)
	stranger, _ := other.Issue(t, good)
	for _, c := range []struct {
		name  string
		chain []*x509.Certificate
		id    Identity
		want  error
	}{
		{"none", nil, Identity{Kind: IDFQDN, Name: "gw.example.net"}, ErrNoCertificate},
		{"unknown CA", []*x509.Certificate{stranger}, Identity{Kind: IDFQDN, Name: "gw.example.net"}, ErrUnknownCA},
		{"intermediate missing", []*x509.Certificate{leaf}, Identity{Kind: IDFQDN, Name: "gw.example.net"}, ErrUnknownCA},
		{"expired", inter.Chain(old), Identity{Kind: IDFQDN, Name: "gw.example.net"}, ErrCertExpired},
		{"may not sign", inter.Chain(noSign), Identity{Kind: IDFQDN, Name: "gw.example.net"}, ErrKeyUsage},
		{"other name", chain, Identity{Kind: IDFQDN, Name: "other.example.net"}, ErrIdentityMismatch},
		{"no stripping", chain, Identity{Kind: IDUserFQDN, Name: "ops@other.example.net"}, ErrIdentityMismatch},
		{"fqdn of an email", chain, Identity{Kind: IDFQDN, Name: "ops@gw.example.net"}, ErrIdentityMismatch},
		{"other address", chain, AddressIdentity(netip.MustParseAddr("192.0.2.9")), ErrIdentityMismatch},
		{"other DN", chain, Identity{Kind: IDDN, Name: string(inter.Cert.RawSubject)}, ErrIdentityMismatch},
	} {
		if _, err := VerifyPeerCertificate(c.chain, roots, certNow, c.id); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := VerifyPeerCertificate(chain, roots, certNow.Add(2*365*24*time.Hour), Identity{Kind: IDFQDN, Name: "gw.example.net"}); !errors.Is(err, ErrCertExpired) {
		t.Errorf("two years on: %v", err)
	}
}

// TestValidateCertificates: what a certificate policy needs, by version.
func TestValidateCertificates(t *testing.T) {
	root := swantest.NewRootCA(t, "root", p256, swantest.Around(certNow))
	ecLeaf, ecKey := root.Issue(t, swantest.LeafSpec{CommonName: "gw", Key: p256, Validity: swantest.Around(certNow)})
	rsaLeaf, rsaKey := root.Issue(t, swantest.LeafSpec{CommonName: "gw", Key: swantest.KeySpec{RSABits: 2048}, Validity: swantest.Around(certNow)})
	ec := &Certificates{Chain: []*x509.Certificate{ecLeaf}, Key: ecKey, CAs: []*x509.Certificate{root.Cert}}
	rsa := &Certificates{Chain: []*x509.Certificate{rsaLeaf}, Key: rsaKey, CAs: []*x509.Certificate{root.Cert}}
	mismatched := &Certificates{Chain: []*x509.Certificate{rsaLeaf}, Key: ecKey, CAs: []*x509.Certificate{root.Cert}}
	noCA := &Certificates{Chain: []*x509.Certificate{ecLeaf}, Key: ecKey}
	pol := func(a AuthMethod) []Policy {
		return []Policy{{Encryption: EncAES128, Hash: HashSHA256, Auth: a, Group: 14}}
	}
	for _, c := range []struct {
		name   string
		cfg    Config
		v1, v2 string // "" for valid, else a piece of the error
	}{
		{"ecdsa", Config{Policies: pol(AuthECDSASig), Certificates: ec}, "needs IKEv2", ""},
		{"rsa", Config{Policies: pol(AuthRSASig), Certificates: rsa}, "", ""},
		{"rsa-sig with an ECDSA key", Config{Policies: pol(AuthRSASig), Certificates: ec}, "with an ECDSA key", "with an ECDSA key"},
		{"ecdsa-sig with an RSA key", Config{Policies: pol(AuthECDSASig), Certificates: rsa}, "needs IKEv2", "with an RSA key"},
		{"key of another certificate", Config{Policies: pol(AuthRSASig), Certificates: mismatched}, "not the certificate's", "not the certificate's"},
		{"no CA", Config{Policies: pol(AuthECDSASig), Certificates: noCA}, "needs IKEv2", "without a trusted CA"},
		{"no certificate", Config{Policies: pol(AuthRSASig)}, "without a certificate", "without a certificate"},
		{"fragment MTU too small", Config{Policies: pol(AuthRSASig), Certificates: rsa, FragmentMTU: 200}, "fragment MTU", "fragment MTU"},
		{"fragment MTU off", Config{Policies: pol(AuthRSASig), Certificates: rsa, FragmentMTU: -1}, "", ""},
	} {
		for v, want := range map[int]string{1: c.v1, 2: c.v2} {
			err := c.cfg.validate(v)
			if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
				t.Errorf("%s, IKEv%d: %v, want %q", c.name, v, err, want)
			}
		}
	}
}
