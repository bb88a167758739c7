package v2

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// The AUTH step of IKE_AUTH (RFC 7296 §2.15) for both methods of the
// configuration: pre-shared keys and certificates with signatures. An
// IKEv2 SA does not negotiate how its ends authenticate; the policies
// whose transforms are the IKE SA's say which methods are allowed (JUNOSe's
// policy rules name one each), and both ends authenticate the same way:
// the initiator with the first of them it has a credential for, the
// responder as the initiator did. With a certificate, the peer's chain must
// lead to a trusted CA, be valid now, and name the identity in its ID
// payload; its AUTH is a signature by the certificate's key
// (signature.go).

// authPlan is how this end authenticates on an IKE SA.
type authPlan struct {
	method  ike.AuthMethod
	psk     ipsec.Key         // AuthPSK
	certs   *ike.Certificates // AuthRSASig, AuthECDSASig
	allowed []ike.AuthMethod  // the methods of the policies of the IKE SA's transforms
}

// Reasons the peer's AUTH is refused, besides ike's certificate errors.
var (
	errNoCredential = errors.New("v2: no credential for an allowed authentication method")
	errPeerMethod   = errors.New("v2: the peer authenticates with a method no policy of the IKE SA allows")
	errPSKMismatch  = errors.New("v2: the peer's AUTH does not verify with the pre-shared key")
)

// authMethods returns the authentication methods of the policies whose
// transforms are su's, in priority order. Daemon.mu must be held.
func (d *Daemon) authMethods(su suite) []ike.AuthMethod {
	var out []ike.AuthMethod
	for _, s := range d.cfg.suites {
		if s.sameTransforms(su) && !slices.Contains(out, s.auth) {
			out = append(out, s.auth)
		}
	}
	return out
}

// planAuth returns how this end authenticates on sa: with method, or, when
// method is zero, the first allowed method it has a credential for. peer
// and remote find the pre-shared key. Daemon.mu must be held.
func (d *Daemon) planAuth(sa *ikeSA, method ike.AuthMethod, peer ike.Identity, remote netip.Addr) (authPlan, error) {
	p := authPlan{allowed: d.authMethods(*sa.suite)}
	for _, m := range p.allowed {
		if method != 0 && m != method {
			continue
		}
		switch {
		case m == ike.AuthPSK:
			if psk := d.pskFor(peer, remote); psk != nil {
				p.method, p.psk = m, psk
				return p, nil
			}
		case m.Certificate() && d.cfg.Certificates != nil:
			p.method, p.certs = m, d.cfg.Certificates
			return p, nil
		}
	}
	if method != 0 {
		return p, fmt.Errorf("%w: %v (allowed: %v)", errNoCredential, method, p.allowed)
	}
	return p, fmt.Errorf("%w (allowed: %v)", errNoCredential, p.allowed)
}

// methodClass returns the configuration's method an AUTH payload belongs
// to: AuthPSK for a shared key MIC, the certificate method of the plan's
// allowed ones for a signature (0 when none is allowed).
func (p authPlan) methodClass(a AuthMethod) ike.AuthMethod {
	if a == AuthSharedKey {
		if slices.Contains(p.allowed, ike.AuthPSK) {
			return ike.AuthPSK
		}
		return 0
	}
	for _, m := range p.allowed {
		if m.Certificate() {
			return m
		}
	}
	return 0
}

// ownAuth returns this end's CERT payloads (none with a pre-shared key)
// and AUTH payload for its ID payload body, in the IKE_AUTH exchange with
// message ID authMID.
func (sa *ikeSA) ownAuth(p authPlan, idBody []byte, authMID uint32) ([]Payload, Payload, error) {
	octets := sa.ownOctets(idBody, authMID)
	if p.method == ike.AuthPSK {
		a := Auth{Method: AuthSharedKey, Data: pskAuth(sa.suite.prf, p.psk, octets)}
		return nil, Payload{Type: PayloadAUTH, Body: a.marshal()}, nil
	}
	s, err := chooseScheme(p.certs.Key.Public(), sa.hs.peerHashes, p.certs.RSAPSS)
	if err != nil {
		return nil, Payload{}, err
	}
	a, err := s.sign(p.certs.Key, octets, sa.d.rand)
	if err != nil {
		return nil, Payload{}, err
	}
	sa.signed().own = s
	sa.d.log.Debug("signing AUTH", "scheme", s.String(), "remote", sa.remote)
	return certPayloads(p.certs.Chain, sa.hs.peerCertReq), Payload{Type: PayloadAUTH, Body: a.marshal()}, nil
}

// checkPeerAuth verifies the peer's AUTH a in message m, for its identity
// id and ID payload body: with the plan's pre-shared key, or with the
// certificates of m. The error says why it failed.
func (sa *ikeSA) checkPeerAuth(m *Message, a Auth, p authPlan, id ike.Identity, idBody []byte) error {
	octets := sa.peerOctets(idBody, m.MessageID)
	if got := p.methodClass(a.Method); got == 0 || got.Certificate() != p.method.Certificate() {
		return fmt.Errorf("%w: AUTH method %d (allowed: %v, this end: %v)", errPeerMethod, a.Method, p.allowed, p.method)
	}
	if p.method == ike.AuthPSK {
		if !hmac.Equal(a.Data, pskAuth(sa.suite.prf, p.psk, octets)) {
			return errPSKMismatch
		}
		return nil
	}
	chain, err := peerCertificates(m)
	if err != nil {
		return fmt.Errorf("%w: %v", ike.ErrBadCertificate, err)
	}
	d := sa.d
	d.mu.Lock()
	roots := d.cfg.roots
	d.mu.Unlock()
	leaf, err := ike.VerifyPeerCertificate(chain, roots, d.clk.Now(), id)
	if err != nil {
		return err
	}
	s, err := verifySignature(leaf.PublicKey, a, octets)
	if err != nil {
		return fmt.Errorf("certificate %q: %w", leaf.Subject.String(), err)
	}
	sa.signed().peer = s
	d.log.Debug("peer AUTH verified", "scheme", s.String(), "subject", leaf.Subject.String(), "remote", sa.remote)
	return nil
}

// sendAuthFailed tells the peer, in an INFORMATIONAL request this end does
// not wait for, that its authentication failed (§2.21.2: the initiator
// cannot answer the responder's IKE_AUTH). The SA's mutex must be held.
func (sa *ikeSA) sendAuthFailed() {
	if !sa.keyed() {
		return
	}
	h := sa.header(Informational, sa.win.nextID, false)
	sa.win.nextID++
	if wire, err := sa.sealOut(h, []Payload{notifyPayload(AuthenticationFailed, nil)}, 0); err == nil {
		sa.sendAll(wire)
	}
}
