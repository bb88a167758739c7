package v1

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// DOIIPsec is the IPsec domain of interpretation (RFC 2407 §4.2).
const DOIIPsec = 1

// SituationIdentityOnly is the only situation ISM uses (RFC 2407 §4.2).
const SituationIdentityOnly = 1

// Protocol IDs (RFC 2407 §4.4.1).
const (
	ProtoISAKMP = 1
	ProtoAH     = 2
	ProtoESP    = 3
)

// SA is a security association payload (RFC 2408 §3.4, RFC 2407 §4.6.1).
type SA struct {
	DOI, Situation uint32
	Proposals      []Proposal
}

// Proposal is a proposal payload (RFC 2408 §3.5).
type Proposal struct {
	Number, Protocol uint8
	SPI              []byte
	Transforms       []Transform
}

// Transform is a transform payload (RFC 2408 §3.6).
type Transform struct {
	Number, ID uint8
	Attrs      []Attr
}

// Attr is a data attribute (RFC 2408 §3.3). Values longer than eight bytes
// are not used by IKEv1 or the IPsec DOI and are refused when parsed.
type Attr struct {
	Type  uint16
	Value uint64
}

// Get returns the value of the first attribute of type t.
func (t *Transform) Get(typ uint16) (uint64, bool) {
	for _, a := range t.Attrs {
		if a.Type == typ {
			return a.Value, true
		}
	}
	return 0, false
}

// ParseSA parses the body of an SA payload.
func ParseSA(body []byte) (*SA, error) {
	s := cryptobyte.String(body)
	sa := &SA{}
	if !s.ReadUint32(&sa.DOI) || !s.ReadUint32(&sa.Situation) {
		return nil, fmt.Errorf("%w: SA payload truncated", ErrMalformed)
	}
	if sa.DOI != DOIIPsec {
		return nil, fmt.Errorf("%w: SA payload DOI %d", ErrMalformed, sa.DOI)
	}
	if sa.Situation != SituationIdentityOnly {
		return nil, fmt.Errorf("%w: SA situation %#x", ErrMalformed, sa.Situation)
	}
	ps, err := ParsePayloads(PayloadProposal, s, false)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.Type != PayloadProposal {
			return nil, fmt.Errorf("%w: %v inside an SA payload", ErrMalformed, p.Type)
		}
		prop, err := parseProposal(p.Body)
		if err != nil {
			return nil, err
		}
		sa.Proposals = append(sa.Proposals, *prop)
	}
	return sa, nil
}

func parseProposal(body []byte) (*Proposal, error) {
	s := cryptobyte.String(body)
	var p Proposal
	var spiSize, n uint8
	var spi []byte
	if !s.ReadUint8(&p.Number) || !s.ReadUint8(&p.Protocol) || !s.ReadUint8(&spiSize) ||
		!s.ReadUint8(&n) || !s.ReadBytes(&spi, int(spiSize)) {
		return nil, fmt.Errorf("%w: proposal truncated", ErrMalformed)
	}
	p.SPI = append([]byte(nil), spi...)
	ts, err := ParsePayloads(PayloadTransform, s, false)
	if err != nil {
		return nil, err
	}
	if len(ts) != int(n) {
		return nil, fmt.Errorf("%w: proposal says %d transforms, has %d", ErrMalformed, n, len(ts))
	}
	for _, t := range ts {
		if t.Type != PayloadTransform {
			return nil, fmt.Errorf("%w: %v inside a proposal", ErrMalformed, t.Type)
		}
		tr, err := parseTransform(t.Body)
		if err != nil {
			return nil, err
		}
		p.Transforms = append(p.Transforms, *tr)
	}
	return &p, nil
}

func parseTransform(body []byte) (*Transform, error) {
	s := cryptobyte.String(body)
	var t Transform
	if !s.ReadUint8(&t.Number) || !s.ReadUint8(&t.ID) || !s.Skip(2) {
		return nil, fmt.Errorf("%w: transform truncated", ErrMalformed)
	}
	for !s.Empty() {
		if len(t.Attrs) == maxPayloads {
			return nil, fmt.Errorf("%w: too many attributes", ErrMalformed)
		}
		var typ, v uint16
		if !s.ReadUint16(&typ) || !s.ReadUint16(&v) {
			return nil, fmt.Errorf("%w: attribute truncated", ErrMalformed)
		}
		if typ&0x8000 != 0 { // AF=1: type/value (TV)
			t.Attrs = append(t.Attrs, Attr{Type: typ &^ 0x8000, Value: uint64(v)})
			continue
		}
		var val []byte
		if !s.ReadBytes(&val, int(v)) {
			return nil, fmt.Errorf("%w: attribute %d value truncated", ErrMalformed, typ)
		}
		if len(val) > 8 || len(val) == 0 {
			return nil, fmt.Errorf("%w: attribute %d of %d bytes", ErrMalformed, typ, len(val))
		}
		var x uint64
		for _, c := range val {
			x = x<<8 | uint64(c)
		}
		t.Attrs = append(t.Attrs, Attr{Type: typ, Value: x})
	}
	return &t, nil
}

// marshal returns the body of the SA payload.
func (sa *SA) marshal() []byte {
	b := binary.BigEndian.AppendUint32(nil, sa.DOI)
	b = binary.BigEndian.AppendUint32(b, sa.Situation)
	props := make([]outPayload, len(sa.Proposals))
	for i, p := range sa.Proposals {
		props[i] = outPayload{PayloadProposal, p.marshal()}
	}
	return appendPayloads(b, props)
}

func (p *Proposal) marshal() []byte {
	b := []byte{p.Number, p.Protocol, byte(len(p.SPI)), byte(len(p.Transforms))}
	b = append(b, p.SPI...)
	ts := make([]outPayload, len(p.Transforms))
	for i, t := range p.Transforms {
		ts[i] = outPayload{PayloadTransform, t.marshal()}
	}
	return appendPayloads(b, ts)
}

func (t *Transform) marshal() []byte {
	b := []byte{t.Number, t.ID, 0, 0}
	for _, a := range t.Attrs {
		b = appendAttr(b, a)
	}
	return b
}

// appendAttr encodes a as TV when its value fits in 16 bits and as TLV
// with a 4- or 8-byte value otherwise (RFC 2408 §3.3).
func appendAttr(b []byte, a Attr) []byte {
	if a.Value <= 0xffff {
		b = binary.BigEndian.AppendUint16(b, a.Type|0x8000)
		return binary.BigEndian.AppendUint16(b, uint16(a.Value))
	}
	b = binary.BigEndian.AppendUint16(b, a.Type)
	if a.Value <= 0xffffffff {
		b = binary.BigEndian.AppendUint16(b, 4)
		return binary.BigEndian.AppendUint32(b, uint32(a.Value))
	}
	b = binary.BigEndian.AppendUint16(b, 8)
	return binary.BigEndian.AppendUint64(b, a.Value)
}
