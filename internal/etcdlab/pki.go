package etcdlab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// PKI is a test certificate authority with the certificates a cluster
// needs for mutual TLS: one for the members (server and peer, with every
// member address as a SAN) and one per client, named by its common name.
// Keys are ECDSA P-256, made with crypto/x509 in the test.
type PKI struct {
	Dir      string // where the PEM files are
	CAFile   string
	CertFile string // the members' certificate
	KeyFile  string
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
}

// NewPKI makes a CA and a member certificate for ips (127.0.0.1 and
// localhost are always in it) in dir.
func NewPKI(t TB, dir string, ips []netip.Addr) *PKI {
	t.Helper()
	p := &PKI{Dir: dir}
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: "ism test etcd CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("etcdlab: CA: %v", err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.CAFile = filepath.Join(dir, "ca.pem")
	writePEM(t, p.CAFile, "CERTIFICATE", der)
	sans := []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, ip := range ips {
		sans = append(sans, ip.AsSlice())
	}
	p.CertFile, p.KeyFile = p.issue(t, "etcd-member", sans, []string{"localhost"},
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	return p
}

// Client issues a client certificate for name and returns its files.
func (p *PKI) Client(t TB, name string) (certFile, keyFile string) {
	t.Helper()
	return p.issue(t, name, nil, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
}

// ClientTLS returns a client TLS configuration for name: its certificate
// and the CA as the only root.
func (p *PKI) ClientTLS(t TB, name string) *tls.Config {
	t.Helper()
	cf, kf := p.Client(t, name)
	cert, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatalf("etcdlab: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func (p *PKI) issue(t TB, cn string, ips []net.IP, dns []string, usage []x509.ExtKeyUsage) (string, string) {
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: usage,
		IPAddresses: ips, DNSNames: dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatalf("etcdlab: certificate %s: %v", cn, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("etcdlab: %v", err)
	}
	cf, kf := filepath.Join(p.Dir, cn+".pem"), filepath.Join(p.Dir, cn+"-key.pem")
	writePEM(t, cf, "CERTIFICATE", der)
	writePEM(t, kf, "PRIVATE KEY", kder)
	return cf, kf
}

func newKey(t TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("etcdlab: %v", err)
	}
	return k
}

func serial(t TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("etcdlab: %v", err)
	}
	return n
}

func writePEM(t TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("etcdlab: %v", err)
	}
}
