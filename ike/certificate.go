package ike

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Certificates holds what signature authentication needs. The daemon
// reads it when it starts and on Reconfigure.
type Certificates struct {
	// Chain is the local certificate first, then the intermediate CA
	// certificates that lead to a trusted root, in order.
	Chain []*x509.Certificate
	// Key is the local certificate's private key: RSA for rsa-sig, ECDSA
	// on P-256, P-384 or P-521 for ecdsa-sig.
	Key crypto.Signer
	// CAs are trusted for the peers' certificates; they are named in the
	// certificate requests this end sends (IKEv1: by subject; IKEv2: by
	// the SHA-1 hash of their public key, RFC 7296 §3.7).
	CAs []*x509.Certificate
	// RSAPSS makes IKEv2 sign with RSASSA-PSS instead of PKCS #1 v1.5
	// when the peer takes RFC 7427 signatures (an RSA key only).
	RSAPSS bool
}

// Reasons a peer's certificate is refused. VerifyPeerCertificate wraps
// one of them with the details.
var (
	ErrNoCertificate    = errors.New("ike: the peer sent no certificate")
	ErrUnknownCA        = errors.New("ike: the peer's certificate is not signed by a trusted CA")
	ErrCertExpired      = errors.New("ike: the peer's certificate is expired or not yet valid")
	ErrKeyUsage         = errors.New("ike: the peer's certificate may not sign")
	ErrIdentityMismatch = errors.New("ike: the peer's certificate does not name its identity")
	ErrBadCertificate   = errors.New("ike: the peer's certificate chain is invalid")
)

// check reports whether the certificates can authenticate with method m:
// a certificate whose key is the private key's, of the method's type.
func (c *Certificates) check(m AuthMethod, version int) error {
	if c == nil || len(c.Chain) == 0 || c.Chain[0] == nil || c.Key == nil {
		return fmt.Errorf("%v without a certificate and key", m)
	}
	if version == 2 && len(c.CAs) == 0 {
		return fmt.Errorf("%v without a trusted CA", m)
	}
	pub := c.Key.Public()
	if k, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(c.Chain[0].PublicKey) {
		return errors.New("the private key is not the certificate's")
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if m != AuthRSASig {
			return fmt.Errorf("%v with an RSA key", m)
		}
	case *ecdsa.PublicKey:
		if m != AuthECDSASig {
			return fmt.Errorf("%v with an ECDSA key", m)
		}
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521() {
			return fmt.Errorf("ECDSA curve %s: P-256, P-384 or P-521 only", k.Curve.Params().Name)
		}
	default:
		return fmt.Errorf("%v with a %T key", m, pub)
	}
	return nil
}

// VerifyPeerCertificate checks a peer's certificates: chain[0] is its
// end-entity certificate, the others intermediates in any order. The
// certificate must lead to one of roots, be valid at now, allow signing
// (digitalSignature or nonRepudiation when key usage is present, RFC 4945
// §5.1.3.2), and name id (NamesIdentity). It returns the end-entity
// certificate, or an error wrapping one of the Err* reasons above.
func VerifyPeerCertificate(chain []*x509.Certificate, roots *x509.CertPool, now time.Time, id Identity) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, ErrNoCertificate
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case err == nil:
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return nil, fmt.Errorf("%w: %v", ErrCertExpired, err)
	case errors.As(err, &unknown):
		return nil, fmt.Errorf("%w: %v", ErrUnknownCA, err)
	default:
		return nil, fmt.Errorf("%w: %v", ErrBadCertificate, err)
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, ErrKeyUsage
	}
	if !NamesIdentity(leaf, id) {
		return nil, fmt.Errorf("%w: %v is not in %s", ErrIdentityMismatch, id, certNames(leaf))
	}
	return leaf, nil
}

// NamesIdentity reports whether a certificate names an identity: an
// address, FQDN or user@fqdn among its subjectAltName entries, a DN as
// its subject (RFC 4945 §3.1). There is no stripping of user@ and no
// second search (the seed: with certificates both peers use the same
// identity format).
func NamesIdentity(c *x509.Certificate, id Identity) bool {
	switch id.Kind {
	case IDFQDN:
		return slices.ContainsFunc(c.DNSNames, func(n string) bool { return strings.EqualFold(n, id.Name) })
	case IDUserFQDN:
		return slices.ContainsFunc(c.EmailAddresses, func(n string) bool { return strings.EqualFold(n, id.Name) })
	case IDAddress:
		return slices.ContainsFunc(c.IPAddresses, func(ip net.IP) bool {
			a, _ := netip.AddrFromSlice(ip)
			return a.Unmap() == id.Addr.Unmap()
		})
	case IDDN:
		return string(c.RawSubject) == id.Name
	}
	return false
}

// certNames describes what a certificate names, for errors.
func certNames(c *x509.Certificate) string {
	var names []string
	names = append(names, c.DNSNames...)
	names = append(names, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return fmt.Sprintf("subject %q, subjectAltName %v", c.Subject.String(), names)
}
