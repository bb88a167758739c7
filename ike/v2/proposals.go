package v2

import (
	"encoding/binary"
	"fmt"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/transform"
)

// SA payloads built from the configuration and matched against the peer's
// (RFC 7296 §2.7, §3.3). This end proposes its policies (IKE SA) or its
// tunnel's transform set (child SA) in priority order, one proposal each
// with one transform of each type; as responder it takes its own order
// first and the peer's second: the first of its entries that any of the
// peer's proposals offers wins.

// ikeProposals returns the IKE SA proposals of the policies. A policy
// with optional additional key exchanges has a second proposal without
// ADDKE transforms right after its first: a responder that does not know
// RFC 9370 refuses a proposal with transform types it does not
// understand (§3.3.6; charon 5.9 does), and takes that one.
func ikeProposals(suites []suite) *SA {
	s := &SA{}
	add := func(ts []Transform) {
		s.Proposals = append(s.Proposals, Proposal{Number: uint8(len(s.Proposals) + 1), Protocol: ProtoIKE, Transforms: ts})
	}
	for _, su := range suites {
		add(append(su.baseTransforms(), su.addkeTransforms()...))
		if len(su.addke) > 0 && su.addkeOptional {
			add(su.baseTransforms())
		}
	}
	return s
}

// baseTransforms are a suite's transforms of RFC 7296: ENCR, PRF, INTEG
// (none with an AEAD cipher) and KE.
func (su suite) baseTransforms() []Transform {
	ts := []Transform{{Type: TransformENCR, ID: su.encr.id, KeyLength: keyLengthAttr(su.encr)},
		{Type: TransformPRF, ID: su.prf.id}}
	if !su.encr.aead() {
		ts = append(ts, Transform{Type: TransformINTEG, ID: su.integ.id})
	}
	return append(ts, Transform{Type: TransformDH, ID: uint16(su.group)})
}

// chosenIKE is the responder's SA payload: the suite's base transforms
// and the ADDKE transforms it picked, with the number of the peer's
// proposal.
func chosenIKE(su suite, number uint8, addke []Transform) *SA {
	ts := append(su.baseTransforms(), addke...)
	return &SA{Proposals: []Proposal{{Number: number, Protocol: ProtoIKE, Transforms: ts}}}
}

// keyLengthAttr is the Key Length attribute a cipher needs: AES's (§3.3.5:
// "used only with ... variable-length keys"), none for 3DES.
func keyLengthAttr(e encrFunc) uint16 {
	if e.id == encr3DES {
		return 0
	}
	return uint16(e.keyBits)
}

// offers reports whether proposal p offers transform t.
func offers(p Proposal, t Transform) bool {
	for _, x := range p.Transforms {
		if x.Type == t.Type && x.ID == t.ID && x.KeyLength == t.KeyLength && x.Other == nil {
			return true
		}
	}
	return false
}

// understood reports whether every transform type of p is one this end
// knows (§3.3.6: a proposal with an unknown type is not chosen); the
// Additional Key Exchange types are known (RFC 9370 §2.2.1).
func understood(p Proposal) bool {
	for _, t := range p.Transforms {
		if t.Type < TransformENCR || t.Type > TransformADDKE7 {
			return false
		}
	}
	return true
}

// hasType reports whether p has a transform of type t other than "none".
func hasType(p Proposal, t TransformType) bool {
	for _, x := range p.Transforms {
		if x.Type == t && x.ID != 0 {
			return true
		}
	}
	return false
}

// chooseIKE picks the IKE SA proposal as responder: the first of this
// end's suites the peer offers, and the peer's proposal. The proposals'
// SPIs have spiLen octets: none in IKE_SA_INIT, 8 in a rekey (§3.3.1).
// The suite returned has the additional key exchanges to perform, and
// addke the ADDKE transforms of the answer (addke.go); intermediate is
// false when the peer cannot do them in IKE_INTERMEDIATE.
func chooseIKE(suites []suite, peer *SA, spiLen int, intermediate bool) (su suite, p Proposal, addke []Transform, ok bool) {
	for _, su := range suites {
		for _, p := range peer.Proposals {
			if p.Protocol != ProtoIKE || len(p.SPI) != spiLen || !understood(p) {
				continue
			}
			ok := true
			for _, t := range su.baseTransforms() {
				ok = ok && offers(p, t)
			}
			if !ok || (su.encr.aead() && hasType(p, TransformINTEG)) {
				continue
			}
			methods, answer, ok := pickADDKE(su, p, intermediate)
			if ok {
				su.addke, su.addkeOptional = methods, false
				return su, p, answer, true
			}
		}
	}
	return suite{}, Proposal{}, nil, false
}

// acceptedIKE checks the responder's choice against what this end
// proposed: one proposal, one transform of each type, all offered
// (§2.7), the ADDKE ones as addke.go says. The suite returned has the
// additional key exchanges to perform.
func acceptedIKE(suites []suite, got *SA) (suite, error) {
	if len(got.Proposals) != 1 {
		return suite{}, fmt.Errorf("%w: %d proposals in the response", ErrMalformed, len(got.Proposals))
	}
	p := got.Proposals[0]
	base := 0
	for _, t := range p.Transforms {
		if !isADDKE(t.Type) {
			base++
		}
	}
	var errADDKE error
	for _, su := range suites {
		mine := su.baseTransforms()
		if base != len(mine) {
			continue
		}
		ok := true
		for _, t := range mine {
			ok = ok && offers(p, t)
		}
		if !ok {
			continue
		}
		methods, err := acceptADDKE(su, p)
		if err != nil {
			errADDKE = err
			continue
		}
		su.addke, su.addkeOptional = methods, false
		return su, nil
	}
	if errADDKE != nil {
		return suite{}, errADDKE
	}
	return suite{}, fmt.Errorf("v2: the responder chose a proposal this end did not make")
}

// childOffer is what this end proposes for a child SA.
type childOffer struct {
	set  []transform.Transform
	spis map[transform.Protocol]uint32 // this end's inbound SPI per protocol
	pfs  int                           // DH group, 0: none (always 0 in IKE_AUTH)
	esn  bool                          // propose ESN first
	// addke are the additional key exchanges with PFS (RFC 9370
	// §2.2.4): the IKE SA's, required.
	addke []int
}

func esnTransforms(esn bool) []Transform {
	if esn {
		return []Transform{{Type: TransformESN, ID: esnYes}, {Type: TransformESN, ID: esnNo}}
	}
	return []Transform{{Type: TransformESN, ID: esnNo}}
}

func spiBytes(spi uint32) []byte { return binary.BigEndian.AppendUint32(nil, spi) }

// sa returns the SA payload of the offer.
func (o childOffer) sa() *SA {
	s := &SA{}
	for i, t := range o.set {
		ts := espTransforms(t)
		if o.pfs != 0 {
			ts = append(ts, Transform{Type: TransformDH, ID: uint16(o.pfs)})
			ts = append(ts, suite{addke: o.addke}.addkeTransforms()...)
		}
		ts = append(ts, esnTransforms(o.esn)...)
		s.Proposals = append(s.Proposals, Proposal{Number: uint8(i + 1), Protocol: protocolOf(t),
			SPI: spiBytes(o.spis[t.Protocol]), Transforms: ts})
	}
	return s
}

// childChoice is a negotiated child SA proposal.
type childChoice struct {
	t       transform.Transform
	peerSPI uint32
	pfs     int
	esn     bool
	number  uint8
	// addke are the additional key exchanges to perform (RFC 9370
	// §2.2.4), addkeAnswer the responder's ADDKE transforms.
	addke       []int
	addkeAnswer []Transform
}

// proposal returns the responder's SA payload for the choice, with this
// end's inbound SPI.
func (c childChoice) proposal(spi uint32) *SA {
	ts := espTransforms(c.t)
	if c.pfs != 0 {
		ts = append(ts, Transform{Type: TransformDH, ID: uint16(c.pfs)})
	}
	ts = append(ts, c.addkeAnswer...)
	esn := uint16(esnNo)
	if c.esn {
		esn = esnYes
	}
	ts = append(ts, Transform{Type: TransformESN, ID: esn})
	return &SA{Proposals: []Proposal{{Number: c.number, Protocol: protocolOf(c.t), SPI: spiBytes(spi), Transforms: ts}}}
}

// chooseChild picks a child SA proposal as responder from the tunnel's
// transform set. withKE is false in IKE_AUTH, where DH and ADDKE
// transforms are ignored; in CREATE_CHILD_SA the group follows
// ike.ChoosePFSGroup (the seed's PFS rules) with the tunnel's PFS group,
// and with PFS the additional key exchanges may be any of addke (the IKE
// SA's) or none (RFC 9370 §2.2.4).
func chooseChild(set []transform.Transform, esn bool, localPFS int, withKE bool, addke []int, peer *SA) (childChoice, bool) {
	for _, t := range set {
		mine := espTransforms(t)
		for _, p := range peer.Proposals {
			if p.Protocol != protocolOf(t) || len(p.SPI) != 4 || !understood(p) {
				continue
			}
			ok := true
			for _, x := range mine {
				ok = ok && offers(p, x)
			}
			if !ok || (t.Integrity == transform.IntegrityNone && hasType(p, TransformINTEG)) {
				continue // not offered, or the peer wants integrity this entry lacks
			}
			c := childChoice{t: t, peerSPI: binary.BigEndian.Uint32(p.SPI), number: p.Number}
			if c.esn, ok = pickESN(p, esn); !ok {
				continue
			}
			if withKE {
				if c.pfs, ok = pickPFS(p, localPFS); !ok {
					continue
				}
				mine := suite{}
				if c.pfs != 0 {
					mine = suite{addke: addke, addkeOptional: true}
				}
				if c.addke, c.addkeAnswer, ok = pickADDKE(mine, p, true); !ok {
					continue
				}
			}
			return c, true
		}
	}
	return childChoice{}, false
}

// pickESN chooses the ESN transform: ESN when this end prefers it and the
// peer offers it, else none if offered, else ESN (the data path does
// both).
func pickESN(p Proposal, prefer bool) (bool, bool) {
	yes, no := offers(p, Transform{Type: TransformESN, ID: esnYes}), offers(p, Transform{Type: TransformESN, ID: esnNo})
	hasESN := yes || no
	switch {
	case !hasESN:
		return false, true // §3.3.3: ESN is mandatory for ESP and AH; be lenient, as charon is
	case prefer && yes, !no:
		return true, true
	}
	return false, true
}

// pickPFS chooses the DH group of a CREATE_CHILD_SA proposal.
func pickPFS(p Proposal, local int) (int, bool) {
	var groups []int
	for _, t := range p.Transforms {
		if t.Type == TransformDH {
			groups = append(groups, int(t.ID))
		}
	}
	if len(groups) == 0 {
		groups = []int{0}
	}
	for _, g := range groups {
		if g, err := ike.ChoosePFSGroup(local, g); err == nil {
			return g, true
		}
	}
	return 0, false
}

// acceptedChild checks the responder's child SA proposal against the
// offer and returns the choice.
func acceptedChild(o childOffer, got *SA) (childChoice, error) {
	if len(got.Proposals) != 1 {
		return childChoice{}, fmt.Errorf("%w: %d child proposals in the response", ErrMalformed, len(got.Proposals))
	}
	p := got.Proposals[0]
	if p.Number == 0 || int(p.Number) > len(o.set) || len(p.SPI) != 4 {
		return childChoice{}, fmt.Errorf("v2: the responder chose child proposal %d, not one of this end's", p.Number)
	}
	t := o.set[p.Number-1]
	mine := o.sa().Proposals[p.Number-1]
	if p.Protocol != mine.Protocol {
		return childChoice{}, fmt.Errorf("v2: the responder changed proposal %d's protocol", p.Number)
	}
	c := childChoice{t: t, peerSPI: binary.BigEndian.Uint32(p.SPI), number: p.Number}
	seen := map[TransformType]bool{}
	for _, x := range p.Transforms {
		if seen[x.Type] || !offers(mine, x) {
			return childChoice{}, fmt.Errorf("v2: the responder chose a transform this end did not offer")
		}
		seen[x.Type] = true
		switch x.Type {
		case TransformESN:
			c.esn = x.ID == esnYes
		case TransformDH:
			c.pfs = int(x.ID)
		}
	}
	if o.pfs != 0 {
		var err error
		if c.addke, err = acceptADDKE(suite{addke: o.addke}, p); err != nil {
			return childChoice{}, err
		}
	}
	for _, x := range espTransforms(t) {
		if !offers(p, x) {
			return childChoice{}, fmt.Errorf("v2: the responder left out a transform of proposal %d", p.Number)
		}
	}
	if o.pfs != 0 && c.pfs != o.pfs {
		return childChoice{}, fmt.Errorf("v2: the responder dropped PFS")
	}
	return c, nil
}
