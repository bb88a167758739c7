package v2

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/crypto/cryptobyte"
)

// The payload bodies of RFC 7296 §3.3–§3.13. Each type has marshal,
// which returns the body, and unmarshal, which resets the value, parses a
// body and refuses trailing bytes; none keeps a reference to the bytes it
// parsed.

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }

// Protocol is a Protocol ID of an SA proposal, Notify or Delete (§3.3.1).
type Protocol uint8

// Protocols.
const (
	ProtoNone Protocol = 0
	ProtoIKE  Protocol = 1
	ProtoAH   Protocol = 2
	ProtoESP  Protocol = 3
)

// TransformType is a transform's type (§3.3.2).
type TransformType uint8

// Transform types.
const (
	TransformENCR  TransformType = 1
	TransformPRF   TransformType = 2
	TransformINTEG TransformType = 3
	TransformDH    TransformType = 4 // "Key Exchange Method" since RFC 9370
	TransformESN   TransformType = 5
	// Additional Key Exchange 1 to 7 (RFC 9370 §2.2.1): the IDs of
	// Transform Type 4, performed in the order of the types.
	TransformADDKE1 TransformType = 6
	TransformADDKE7 TransformType = 12
)

// attrKeyLength is the Key Length attribute (§3.3.5), in bits, TV form.
const attrKeyLength = 14

// Transform is one transform of a proposal. KeyLength is the Key Length
// attribute (0: absent). Other attributes are kept raw in Other: §3.3.6
// says a transform with an attribute this end does not understand is not
// chosen.
type Transform struct {
	Type      TransformType
	ID        uint16
	KeyLength uint16
	Other     []byte // attributes other than one Key Length, as on the wire
}

// Proposal is one proposal of an SA payload (§3.3.1).
type Proposal struct {
	Number     uint8
	Protocol   Protocol
	SPI        []byte // empty in IKE_SA_INIT; 8 bytes rekeying an IKE SA; 4 for ESP/AH
	Transforms []Transform
}

// SA is an SA payload: proposals in order of preference.
type SA struct {
	Proposals []Proposal
}

// SA payload substructures (§3.3.1, §3.3.2): the first byte says whether
// another follows (2 for a proposal, 3 for a transform) or this is the
// last (0).
const (
	lastSub         = 0
	moreProposals   = 2
	moreTransforms  = 3
	proposalHdrSize = 8
	transformHdrLen = 8
)

func (s *SA) marshal() []byte {
	var b []byte
	for i, p := range s.Proposals {
		var tb []byte
		for j, t := range p.Transforms {
			more := byte(moreTransforms)
			if j == len(p.Transforms)-1 {
				more = lastSub
			}
			n := transformHdrLen + len(t.Other)
			if t.KeyLength != 0 {
				n += 4
			}
			tb = append(tb, more, 0)
			tb = binary.BigEndian.AppendUint16(tb, uint16(n))
			tb = append(tb, byte(t.Type), 0)
			tb = binary.BigEndian.AppendUint16(tb, t.ID)
			if t.KeyLength != 0 {
				tb = binary.BigEndian.AppendUint16(tb, 0x8000|attrKeyLength)
				tb = binary.BigEndian.AppendUint16(tb, t.KeyLength)
			}
			tb = append(tb, t.Other...)
		}
		more := byte(moreProposals)
		if i == len(s.Proposals)-1 {
			more = lastSub
		}
		b = append(b, more, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(proposalHdrSize+len(p.SPI)+len(tb)))
		b = append(b, p.Number, byte(p.Protocol), byte(len(p.SPI)), byte(len(p.Transforms)))
		b = append(b, p.SPI...)
		b = append(b, tb...)
	}
	return b
}

func (s *SA) unmarshal(body []byte) error {
	*s = SA{}
	in := cryptobyte.String(body)
	for !in.Empty() {
		var more, reserved, num, proto, spiSize, nt uint8
		var length uint16
		if !in.ReadUint8(&more) || !in.ReadUint8(&reserved) || !in.ReadUint16(&length) {
			return malformed("proposal header")
		}
		var rest cryptobyte.String
		if length < proposalHdrSize || !in.ReadBytes((*[]byte)(&rest), int(length)-4) {
			return malformed("proposal length")
		}
		if !rest.ReadUint8(&num) || !rest.ReadUint8(&proto) || !rest.ReadUint8(&spiSize) || !rest.ReadUint8(&nt) {
			return malformed("proposal header")
		}
		p := Proposal{Number: num, Protocol: Protocol(proto)}
		var spi []byte
		if !rest.ReadBytes(&spi, int(spiSize)) {
			return malformed("proposal SPI")
		}
		p.SPI = append([]byte(nil), spi...)
		for i := 0; i < int(nt); i++ {
			t, err := readTransform(&rest, i == int(nt)-1)
			if err != nil {
				return err
			}
			p.Transforms = append(p.Transforms, t)
		}
		if !rest.Empty() {
			return malformed("bytes after the last transform")
		}
		s.Proposals = append(s.Proposals, p)
		if (more == lastSub) != in.Empty() || (more != lastSub && more != moreProposals) {
			return malformed("proposal chain")
		}
	}
	if len(s.Proposals) == 0 {
		return malformed("SA without proposals")
	}
	return nil
}

func readTransform(in *cryptobyte.String, last bool) (Transform, error) {
	var more, reserved, typ, reserved2 uint8
	var length, id uint16
	if !in.ReadUint8(&more) || !in.ReadUint8(&reserved) || !in.ReadUint16(&length) {
		return Transform{}, malformed("transform header")
	}
	var body cryptobyte.String
	if length < transformHdrLen || !in.ReadBytes((*[]byte)(&body), int(length)-4) {
		return Transform{}, malformed("transform length")
	}
	if (more == lastSub) != last || (more != lastSub && more != moreTransforms) {
		return Transform{}, malformed("transform chain")
	}
	if !body.ReadUint8(&typ) || !body.ReadUint8(&reserved2) || !body.ReadUint16(&id) {
		return Transform{}, malformed("transform header")
	}
	t := Transform{Type: TransformType(typ), ID: id}
	for !body.Empty() {
		start := []byte(body)
		var at, av uint16
		if !body.ReadUint16(&at) || !body.ReadUint16(&av) {
			return Transform{}, malformed("transform attribute")
		}
		if at&0x8000 == 0 { // TLV: av is the length (§3.3.5)
			if !body.Skip(int(av)) {
				return Transform{}, malformed("transform attribute length")
			}
		} else if at&0x7fff == attrKeyLength && t.KeyLength == 0 && av != 0 {
			t.KeyLength = av
			continue
		}
		t.Other = append(t.Other, start[:len(start)-len(body)]...)
	}
	return t, nil
}

// TrafficSelector is one selector of a TSi or TSr payload (§3.13.1): an
// address range, an IP protocol (0: any) and a port range.
type TrafficSelector struct {
	Protocol   uint8
	StartPort  uint16
	EndPort    uint16
	Start, End netip.Addr
}

// TS is a TSi or TSr payload.
type TS struct {
	Selectors []TrafficSelector
}

func (t *TS) marshal() []byte {
	b := []byte{byte(len(t.Selectors)), 0, 0, 0}
	for _, s := range t.Selectors {
		typ, n := byte(tsIPv4Range), 16
		if s.Start.Is6() {
			typ, n = tsIPv6Range, 40
		}
		b = append(b, typ, s.Protocol)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
		b = binary.BigEndian.AppendUint16(b, s.StartPort)
		b = binary.BigEndian.AppendUint16(b, s.EndPort)
		b = append(b, s.Start.AsSlice()...)
		b = append(b, s.End.AsSlice()...)
	}
	return b
}

func (t *TS) unmarshal(body []byte) error {
	*t = TS{}
	in := cryptobyte.String(body)
	var n uint8
	if !in.ReadUint8(&n) || !in.Skip(3) || n == 0 {
		return malformed("TS payload")
	}
	for i := 0; i < int(n); i++ {
		var typ, proto uint8
		var length uint16
		var s TrafficSelector
		if !in.ReadUint8(&typ) || !in.ReadUint8(&proto) || !in.ReadUint16(&length) ||
			!in.ReadUint16(&s.StartPort) || !in.ReadUint16(&s.EndPort) {
			return malformed("traffic selector")
		}
		size := 4
		switch {
		case typ == tsIPv4Range && length == 16:
		case typ == tsIPv6Range && length == 40:
			size = 16
		default:
			// §3.13.1: other types (RFC 9478's) are not understood;
			// a selector this end cannot read makes the payload
			// unusable.
			return malformed(fmt.Sprintf("traffic selector type %d length %d", typ, length))
		}
		var a, z []byte
		if !in.ReadBytes(&a, size) || !in.ReadBytes(&z, size) {
			return malformed("traffic selector addresses")
		}
		s.Protocol = proto
		s.Start, _ = netip.AddrFromSlice(a)
		s.End, _ = netip.AddrFromSlice(z)
		t.Selectors = append(t.Selectors, s)
	}
	if !in.Empty() {
		return malformed("bytes after the last traffic selector")
	}
	return nil
}

// payloadBody is the marshal/unmarshal pair every typed payload has.
type payloadBody interface {
	marshal() []byte
	unmarshal([]byte) error
}

var (
	_ payloadBody = (*SA)(nil)
	_ payloadBody = (*KE)(nil)
	_ payloadBody = (*ID)(nil)
	_ payloadBody = (*Cert)(nil)
	_ payloadBody = (*Auth)(nil)
	_ payloadBody = (*Notify)(nil)
	_ payloadBody = (*Delete)(nil)
	_ payloadBody = (*TS)(nil)
)

// decode parses the first payload of type t in m into v; false if there
// is none, an error if it does not parse.
func (m *Message) decode(t PayloadType, v payloadBody) (bool, error) {
	p, ok := m.Get(t)
	if !ok {
		return false, nil
	}
	if err := v.unmarshal(p.Body); err != nil {
		return true, fmt.Errorf("%v: %w", t, err)
	}
	return true, nil
}
