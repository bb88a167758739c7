package v2

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"fmt"
)

// CERT and CERTREQ payloads (RFC 7296 §3.6, §3.7), both of encoding 4,
// X.509 Certificate - Signature. A CERTREQ names the CAs its sender
// trusts, each by the SHA-1 hash of its SubjectPublicKeyInfo, all in one
// payload; it goes in the responder's IKE_SA_INIT and the initiator's
// IKE_AUTH (§1.2). This end sends one CERT for its own certificate and
// one for each intermediate CA certificate of its chain, whether asked or
// not (charon's default, send_cert = ifasked, answers only a CERTREQ, so
// this end always sends one when it authenticates with a certificate); a
// CERTREQ naming one of those intermediates ends the chain below it, the
// peer already has it.

// caHashes returns the CERTREQ data naming the CAs.
func caHashes(cas []*x509.Certificate) []byte {
	var b []byte
	for _, ca := range cas {
		h := sha1.Sum(ca.RawSubjectPublicKeyInfo)
		b = append(b, h[:]...)
	}
	return b
}

// certReqPayload returns a CERTREQ payload with the hashes.
func certReqPayload(hashes []byte) Payload {
	return Payload{Type: PayloadCERTREQ, Body: (&Cert{Encoding: certX509, Data: hashes}).marshal()}
}

// peerCertReq returns the CA hashes of the peer's X.509 CERTREQ payloads,
// concatenated; other encodings and truncated hash lists are ignored.
func peerCertReq(m *Message) []byte {
	var out []byte
	for _, p := range m.All(PayloadCERTREQ) {
		var c Cert
		if c.unmarshal(p.Body) != nil || c.Encoding != certX509 || len(c.Data)%certReqHashSize != 0 {
			continue
		}
		out = append(out, c.Data...)
	}
	return out
}

// certPayloads returns the CERT payloads of a chain (the end-entity
// certificate first): every certificate up to the first intermediate
// whose key the peer named in requested.
func certPayloads(chain []*x509.Certificate, requested []byte) []Payload {
	var ps []Payload
	for i, c := range chain {
		if i > 0 && namesCA(requested, c) {
			break
		}
		ps = append(ps, Payload{Type: PayloadCERT, Body: (&Cert{Encoding: certX509, Data: c.Raw}).marshal()})
	}
	return ps
}

// namesCA reports whether CERTREQ hashes name a CA certificate.
func namesCA(hashes []byte, ca *x509.Certificate) bool {
	h := sha1.Sum(ca.RawSubjectPublicKeyInfo)
	for ; len(hashes) >= certReqHashSize; hashes = hashes[certReqHashSize:] {
		if bytes.Equal(hashes[:certReqHashSize], h[:]) {
			return true
		}
	}
	return false
}

// peerCertificates parses the X.509 CERT payloads of a message, in order:
// the first is the peer's own (§3.6: "the first certificate provided MUST
// contain the public key used to verify the AUTH field"). Other encodings
// are skipped.
func peerCertificates(m *Message) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, p := range m.All(PayloadCERT) {
		var c Cert
		if err := c.unmarshal(p.Body); err != nil {
			return nil, err
		}
		if c.Encoding != certX509 {
			continue
		}
		x, err := x509.ParseCertificate(c.Data)
		if err != nil {
			return nil, fmt.Errorf("v2: CERT payload %d: %w", len(out)+1, err)
		}
		out = append(out, x)
	}
	return out, nil
}
