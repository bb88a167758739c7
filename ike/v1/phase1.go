package v1

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// phase1 is the state of one phase 1 negotiation (main or aggressive
// mode, either role): the transcript pieces the hashes cover and the
// secrets, discarded when the negotiation ends.
type phase1 struct {
	d  *Daemon
	ex *exchange
	sa *ikeSA

	tunnel     *ike.Tunnel // the tunnel phase 1 is for, once known
	policy     ike.Policy
	saiB       []byte // body of the initiator's SA payload
	dh         *ike.KeyExchange
	gxi, gxr   []byte
	ni, nr     []byte
	skeyid     []byte
	psk        ipsec.Key
	localID    ike.Identity
	remoteID   ike.Identity
	idiB, idrB []byte // ID payload bodies
	forceEncap bool
	dpd        bool   // announce DPD (RFC 3706)
	echo       chosen // responder: the proposal and transform chosen
}

// zero forgets the secrets.
func (p *phase1) zero() {
	if p.dh != nil {
		p.dh.Zero()
	}
	clear(p.skeyid)
	p.psk.Zero() // pskFor's copy
	p.psk = nil
}

// errAuth is the error of every failed peer authentication.
var errAuth = errors.New("v1: peer authentication failed")

// usable reports whether this end can authenticate with policy pol to the
// peer: a pre-shared key must be known, or a certificate configured.
// Daemon.mu must be held.
func (p *phase1) usable(pol ike.Policy, psk ipsec.Key) bool {
	switch pol.Auth {
	case ike.AuthPSK:
		return psk != nil
	case ike.AuthRSASig:
		c := p.d.cfg.Certificates
		return c != nil && len(c.Chain) > 0 && c.Key != nil
	}
	return false
}

// initiatorSA builds the initiator's SA payload from the usable policies
// in priority order (one proposal, one transform per policy).
func (p *phase1) initiatorSA() ([]byte, error) {
	d := p.d
	d.mu.Lock()
	pols := d.cfg.Policies
	var ts []Transform
	for _, pol := range pols {
		if p.usable(pol, p.psk) {
			ts = append(ts, phase1Transform(uint8(len(ts)+1), pol))
		}
	}
	d.mu.Unlock()
	if len(ts) == 0 {
		return nil, errors.New("v1: no IKE policy usable with this peer (no pre-shared key or certificate)")
	}
	sa := SA{DOI: DOIIPsec, Situation: SituationIdentityOnly,
		Proposals: []Proposal{{Number: 1, Protocol: ProtoISAKMP, Transforms: ts}}}
	return sa.marshal(), nil
}

// choosePolicy picks, as responder, the first local policy in priority
// order that matches a transform the peer proposed, and returns it with
// the matching transform to echo. Its Lifetime is the lesser of both.
func (p *phase1) choosePolicy(sa *SA) (ike.Policy, Transform, error) {
	if len(sa.Proposals) == 0 {
		return ike.Policy{}, Transform{}, errors.New("v1: SA payload without proposals")
	}
	prop := sa.Proposals[0]
	if prop.Protocol != ProtoISAKMP {
		return ike.Policy{}, Transform{}, fmt.Errorf("v1: phase 1 proposal for protocol %d", prop.Protocol)
	}
	d := p.d
	d.mu.Lock()
	defer d.mu.Unlock()
	why := errors.New("v1: no IKE policy matches the peer's proposals")
	for _, pol := range d.cfg.Policies {
		if !p.usable(pol, p.psk) {
			continue
		}
		for _, t := range prop.Transforms {
			got, err := parsePhase1Transform(&t)
			if err != nil || got.Encryption != pol.Encryption || got.Hash != pol.Hash || got.Auth != pol.Auth || got.Group != pol.Group {
				continue
			}
			if err := checkIKELifetime(got.Lifetime, policyLifetime(pol)); err != nil {
				why = fmt.Errorf("%w: the proposed IKE SA %w", errNoProposal, err)
				continue
			}
			pol.Lifetime = lesserLifetime(policyLifetime(pol), got.Lifetime)
			return pol, withLifetime(t, pol.Lifetime), nil
		}
	}
	return ike.Policy{}, Transform{}, why
}

// withLifetime returns the transform to echo with the lifetime in force:
// the lesser of the two ends' wins, and the initiator learns it from the
// answer.
func withLifetime(t Transform, lt time.Duration) Transform {
	out := Transform{Number: t.Number, ID: t.ID}
	seconds := false
	for _, a := range t.Attrs {
		switch {
		case a.Type == oakleyLifeType:
			seconds = a.Value == lifeTypeSeconds
		case a.Type == oakleyLifeDuration && seconds:
			a.Value = uint64(lt / time.Second)
		}
		out.Attrs = append(out.Attrs, a)
	}
	return out
}

// checkIKELifetime refuses an IKE SA lifetime a peer proposed below the
// least the configuration accepts (ipsec.MinIKELifetime), or below this
// end's own when that is shorter (tests); a longer one than this end's
// is cut to this end's (lesserLifetime).
func checkIKELifetime(lt, own time.Duration) error {
	least := min(ipsec.MinIKELifetime, own)
	if lt > 0 && lt < least {
		return fmt.Errorf("%w: %v, the minimum is %v", ipsec.ErrLifetimeTooShort, lt, least)
	}
	return nil
}

func lesserLifetime(a, b time.Duration) time.Duration {
	return ike.LesserLifetime(ipsec.Lifetime{Time: a}, ipsec.Lifetime{Time: b}).Time
}

// acceptResponderSA checks the responder's SA payload against what this
// end proposed and returns the chosen policy.
func (p *phase1) acceptResponderSA(body []byte) (ike.Policy, error) {
	sa, err := ParseSA(body)
	if err != nil {
		return ike.Policy{}, err
	}
	if len(sa.Proposals) != 1 || len(sa.Proposals[0].Transforms) != 1 {
		return ike.Policy{}, errors.New("v1: responder must choose exactly one transform")
	}
	got, err := parsePhase1Transform(&sa.Proposals[0].Transforms[0])
	if err != nil {
		return ike.Policy{}, err
	}
	d := p.d
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, pol := range d.cfg.Policies {
		if p.usable(pol, p.psk) && got.Encryption == pol.Encryption && got.Hash == pol.Hash && got.Auth == pol.Auth && got.Group == pol.Group {
			if err := checkIKELifetime(got.Lifetime, policyLifetime(pol)); err != nil {
				return ike.Policy{}, fmt.Errorf("%w: the responder's IKE SA %w", errNoProposal, err)
			}
			pol.Lifetime = lesserLifetime(policyLifetime(pol), got.Lifetime)
			return pol, nil
		}
	}
	return ike.Policy{}, errors.New("v1: responder chose a transform that was not proposed")
}

// newDH makes this end's DH key for the policy's group.
func (p *phase1) newDH() error {
	g, ok := ike.LookupGroup(p.policy.Group)
	if !ok {
		return fmt.Errorf("v1: DH group %d not supported", p.policy.Group)
	}
	k, err := g.GenerateKey(p.d.rand)
	if err != nil {
		return err
	}
	p.dh = k
	return nil
}

// deriveKeys computes g^xy, SKEYID and its derivatives, the encryption
// key and the first IV, and stores the keys in the SA (RFC 2409 §5).
func (p *phase1) deriveKeys() error {
	peer := p.gxr
	if !p.sa.initiator {
		peer = p.gxi
	}
	gxy, err := p.dh.Shared(peer)
	if err != nil {
		return err
	}
	defer clear(gxy)
	h := p.policy.Hash.Crypto()
	switch p.policy.Auth {
	case ike.AuthPSK:
		p.skeyid = SKEYIDPreShared(h, p.psk, p.ni, p.nr)
	case ike.AuthRSASig:
		p.skeyid = SKEYIDSignature(h, p.ni, p.nr, gxy)
	}
	keys := DeriveSKEYIDs(h, p.skeyid, gxy, p.sa.icookie, p.sa.rcookie)
	ekey := EncryptionKey(h, keys.E, p.policy.Encryption.KeyLen())
	block, err := newBlock(p.policy.Encryption, ekey)
	clear(keys.E)
	if err != nil {
		clear(ekey)
		keys.Zero()
		return err
	}
	d := p.d
	d.mu.Lock()
	p.sa.policy = p.policy
	p.sa.hash = h
	p.sa.ekey = ekey
	p.sa.skeyidD, p.sa.skeyidA = keys.D, keys.A
	p.sa.p1IV = Phase1IV(h, p.gxi, p.gxr, block.BlockSize())
	d.mu.Unlock()
	return nil
}

// natdPayloads returns this end's NAT-D payloads: the peer's endpoint,
// then this end's, or random data instead of this end's to force UDP
// encapsulation (as strongSwan's encap option does).
func (p *phase1) natdPayloads() []outPayload {
	d := p.d
	d.mu.Lock()
	local, remote := p.sa.local, p.sa.remote
	d.mu.Unlock()
	h := p.policy.Hash.Crypto()
	mine := natDHash(h, p.sa.icookie, p.sa.rcookie, local)
	if p.forceEncap {
		d.random(mine)
	}
	return []outPayload{
		{PayloadNATD, natDHash(h, p.sa.icookie, p.sa.rcookie, remote)},
		{PayloadNATD, mine},
	}
}

// processNATD records what the peer's NAT-D payloads reveal.
func (p *phase1) processNATD(m *Message, pk packet) {
	var natd [][]byte
	for _, n := range m.All(PayloadNATD) {
		natd = append(natd, n.Body)
	}
	d := p.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if !p.sa.peerNATT || len(natd) < 2 {
		return
	}
	p.sa.localNAT, p.sa.remoteNAT = natDetect(p.policy.Hash.Crypto(), p.sa.icookie, p.sa.rcookie, natd, pk.local, pk.remote)
	if p.forceEncap {
		p.sa.localNAT = true
	}
}

// float moves the SA to UDP 4500 when a NAT was detected (RFC 3947 §4).
func (p *phase1) float() {
	d := p.d
	d.mu.Lock()
	defer d.mu.Unlock()
	sa := p.sa
	if sa.peerNATT && (sa.localNAT || sa.remoteNAT) && !sa.natt {
		sa.natt = true
		sa.local = netip.AddrPortFrom(sa.local.Addr(), portNATT)
		sa.remote = netip.AddrPortFrom(sa.remote.Addr(), portNATT)
	}
}

// vendorIDs returns the vendor ID payloads this end sends: NAT-T always,
// DPD when a tunnel to the peer has it on.
func (p *phase1) vendorIDs() []outPayload {
	ps := []outPayload{{PayloadVendorID, natTVendorID}}
	if p.dpd {
		ps = append(ps, outPayload{PayloadVendorID, dpdVendorID})
		p.d.mu.Lock()
		p.sa.localDPD = true
		p.d.mu.Unlock()
	}
	return ps
}

// sawVendorIDs records whether the peer announced RFC 3947 (NAT-T) and
// RFC 3706 (DPD) support.
func (p *phase1) sawVendorIDs(m *Message) {
	for _, v := range m.All(PayloadVendorID) {
		p.d.mu.Lock()
		switch string(v.Body) {
		case string(natTVendorID):
			p.sa.peerNATT = true
		case string(dpdVendorID):
			p.sa.peerDPD = true
		}
		p.d.mu.Unlock()
	}
}

// nonceKE reads the KE and nonce payloads of m.
func nonceKE(m *Message) (ke, nonce []byte, err error) {
	k, n := m.First(PayloadKE), m.First(PayloadNonce)
	if k == nil {
		return nil, nil, unexpectedError(PayloadKE, m)
	}
	if n == nil {
		return nil, nil, unexpectedError(PayloadNonce, m)
	}
	if len(n.Body) < 8 || len(n.Body) > 256 {
		return nil, nil, fmt.Errorf("%w: nonce of %d bytes", ErrMalformed, len(n.Body)) // RFC 2409 §5: 8 to 256
	}
	return append([]byte(nil), k.Body...), append([]byte(nil), n.Body...), nil
}
