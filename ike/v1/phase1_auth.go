package v1

import (
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/ismgw/ism/ike"
)

// How each end of phase 1 proves itself (RFC 2409 §5): HASH_I and HASH_R
// with pre-shared keys, or a certificate and the signature of the hash,
// sent and checked.

// hashI is HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b).
func (p *phase1) hashI() []byte {
	return prf(p.sa.hash, p.skeyid, p.gxi, p.gxr, p.sa.icookie[:], p.sa.rcookie[:], p.saiB, p.idiB)
}

// hashR is HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b).
func (p *phase1) hashR() []byte {
	return prf(p.sa.hash, p.skeyid, p.gxr, p.gxi, p.sa.rcookie[:], p.sa.icookie[:], p.saiB, p.idrB)
}

// ownHash returns the hash this end proves itself with.
func (p *phase1) ownHash() []byte {
	if p.sa.initiator {
		return p.hashI()
	}
	return p.hashR()
}

// peerHash returns the hash the peer must prove itself with.
func (p *phase1) peerHash() []byte {
	if p.sa.initiator {
		return p.hashR()
	}
	return p.hashI()
}

// authPayloads returns this end's HASH payload, or its CERT and SIG
// payloads (RFC 2409 §5.1: SIG_I is the signature of HASH_I).
func (p *phase1) authPayloads() ([]outPayload, error) {
	h := p.ownHash()
	if p.policy.Auth == ike.AuthPSK {
		return []outPayload{{PayloadHash, h}}, nil
	}
	d := p.d
	d.mu.Lock()
	c := d.cfg.Certificates
	d.mu.Unlock()
	var ps []outPayload
	for _, cert := range c.Chain {
		ps = append(ps, outPayload{PayloadCert, (&Cert{Encoding: CertX509Signature, Data: cert.Raw}).marshal()})
	}
	// PKCS #1 v1.5 without a DigestInfo: the hash is signed as is, as
	// strongSwan and other IKEv1 implementations do.
	sig, err := c.Key.Sign(d.rand, h, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("v1: signing: %w", err)
	}
	return append(ps, outPayload{PayloadSig, sig}), nil
}

// certRequests returns a certificate request per trusted CA, naming it by
// its subject (RFC 2408 §3.10).
func (p *phase1) certRequests() []outPayload {
	if p.policy.Auth != ike.AuthRSASig {
		return nil
	}
	d := p.d
	d.mu.Lock()
	defer d.mu.Unlock()
	var ps []outPayload
	for _, ca := range d.cfg.Certificates.CAs {
		ps = append(ps, outPayload{PayloadCertReq, (&Cert{Encoding: CertX509Signature, Data: ca.RawSubject}).marshal()})
	}
	return ps
}

// verifyAuth checks the peer's HASH, or its certificate and signature, in
// message m.
func (p *phase1) verifyAuth(m *Message) error {
	want := p.peerHash()
	if p.policy.Auth == ike.AuthPSK {
		hp := m.First(PayloadHash)
		if hp == nil {
			return unexpectedError(PayloadHash, m)
		}
		if !hmac.Equal(hp.Body, want) {
			return fmt.Errorf("%w: HASH mismatch", errAuth)
		}
		return nil
	}
	sp := m.First(PayloadSig)
	if sp == nil {
		return unexpectedError(PayloadSig, m)
	}
	leaf, err := p.verifyCertificate(m)
	if err != nil {
		return err
	}
	pub, ok := leaf.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: certificate key is not RSA", errAuth)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.Hash(0), want, sp.Body); err != nil {
		return fmt.Errorf("%w: signature: %v", errAuth, err)
	}
	return nil
}

// verifyCertificate checks the peer's certificate chain against the
// trusted CAs and that the certificate names the peer's identity (no
// stripping, no second search: the seed).
func (p *phase1) verifyCertificate(m *Message) (*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, cp := range m.All(PayloadCert) {
		c, err := ParseCert(cp.Body)
		if err != nil || c.Encoding != CertX509Signature {
			continue
		}
		x, err := x509.ParseCertificate(c.Data)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate: %v", errAuth, err)
		}
		certs = append(certs, x)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: peer sent no certificate", errAuth)
	}
	d := p.d
	d.mu.Lock()
	roots := d.cfg.roots
	d.mu.Unlock()
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: d.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("%w: certificate: %v", errAuth, err)
	}
	id := p.remoteID
	match := false
	switch id.Kind {
	case ike.IDFQDN:
		match = slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return strings.EqualFold(n, id.Name) })
	case ike.IDUserFQDN:
		match = slices.ContainsFunc(leaf.EmailAddresses, func(n string) bool { return strings.EqualFold(n, id.Name) })
	case ike.IDAddress:
		match = slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool {
			a, _ := netip.AddrFromSlice(ip)
			return a.Unmap() == id.Addr.Unmap()
		})
	case ike.IDDN:
		match = string(leaf.RawSubject) == id.Name
	}
	if !match {
		return nil, fmt.Errorf("%w: certificate does not name %v", errAuth, id)
	}
	return leaf, nil
}
