package swantest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"
)

// CA is a certification authority for tests, made with crypto/x509: a
// root or an intermediate, with an RSA or ECDSA key, valid when the test
// says (a fake clock's time works). It is immutable once made.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Intermediates are this CA (if it is not a root) and the CAs above
	// it up to the root, root excluded: what a peer sends after its own
	// certificate.
	Intermediates []*x509.Certificate
}

// KeySpec is a key to make: RSA of RSABits, or ECDSA on Curve.
type KeySpec struct {
	RSABits int
	Curve   elliptic.Curve
}

// Validity is a certificate's validity period.
type Validity struct {
	NotBefore, NotAfter time.Time
}

// Around returns a validity from a day before t to a year after it.
func Around(t time.Time) Validity {
	return Validity{NotBefore: t.Add(-24 * time.Hour), NotAfter: t.Add(365 * 24 * time.Hour)}
}

// NewKey makes a key.
func NewKey(t testing.TB, k KeySpec) crypto.Signer {
	t.Helper()
	var key crypto.Signer
	var err error
	if k.Curve != nil {
		key, err = ecdsa.GenerateKey(k.Curve, rand.Reader)
	} else {
		bits := k.RSABits
		if bits == 0 {
			bits = 2048
		}
		key, err = rsa.GenerateKey(rand.Reader, bits)
	}
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// serial returns a random serial number: certificates of one test never
// share an issuer and serial.
func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

// NewRootCA makes a self-signed root CA named name.
func NewRootCA(t testing.TB, name string, k KeySpec, v Validity) *CA {
	t.Helper()
	key := NewKey(t, k)
	tmpl := caTemplate(t, name, v)
	return &CA{Cert: create(t, tmpl, tmpl, key.Public(), key), Key: key}
}

// Intermediate makes a CA named name certified by ca.
func (ca *CA) Intermediate(t testing.TB, name string, k KeySpec, v Validity) *CA {
	t.Helper()
	key := NewKey(t, k)
	c := create(t, caTemplate(t, name, v), ca.Cert, key.Public(), ca.Key)
	return &CA{Cert: c, Key: key, Intermediates: append([]*x509.Certificate{c}, ca.Intermediates...)}
}

func caTemplate(t testing.TB, name string, v Validity) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{Organization: []string{"ISM test"}, CommonName: name},
		NotBefore: v.NotBefore, NotAfter: v.NotAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// LeafSpec is an end-entity certificate to issue.
type LeafSpec struct {
	CommonName string
	DNSNames   []string
	Emails     []string // rfc822Name subjectAltNames (user@fqdn identities)
	IPs        []netip.Addr
	Key        KeySpec
	Validity   Validity
	// KeyUsage is the certificate's key usage; zero: digitalSignature.
	KeyUsage x509.KeyUsage
}

// Issue makes an end-entity certificate and its key. The chain to send
// for it is Chain(cert).
func (ca *CA) Issue(t testing.TB, s LeafSpec) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := NewKey(t, s.Key)
	ku := s.KeyUsage
	if ku == 0 {
		ku = x509.KeyUsageDigitalSignature
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{Organization: []string{"ISM test"}, CommonName: s.CommonName},
		NotBefore: s.Validity.NotBefore, NotAfter: s.Validity.NotAfter,
		DNSNames: s.DNSNames, EmailAddresses: s.Emails, KeyUsage: ku,
	}
	for _, a := range s.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	return create(t, tmpl, ca.Cert, key.Public(), ca.Key), key
}

// Chain returns a certificate issued by ca followed by ca's intermediates.
func (ca *CA) Chain(c *x509.Certificate) []*x509.Certificate {
	return append([]*x509.Certificate{c}, ca.Intermediates...)
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// KeyFile returns where swanctl reads a private key of this type, under
// its configuration directory, and the PEM: rsa/NAME.pem in PKCS #1 form
// or ecdsa/NAME.pem in SEC 1 form.
func KeyFile(t testing.TB, name string, k crypto.Signer) (string, []byte) {
	t.Helper()
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return "rsa/" + name + ".pem", KeyPEM(k)
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return "ecdsa/" + name + ".pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	t.Fatalf("swantest: no swanctl directory for a %T key", k)
	return "", nil
}
