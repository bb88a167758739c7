package v1

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/crypto/cryptobyte"
)

// Every payload starts with the generic payload header (RFC 2408 §3.2):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	! Next Payload  !   RESERVED    !         Payload Length        !
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// and its length counts those four bytes.
const genericHeaderSize = 4

// maxPayloads bounds the payloads of one message, proposals and transforms
// of one SA payload and attributes of one transform.
const maxPayloads = 64

// Payload is one payload of a received message.
type Payload struct {
	Type PayloadType
	Raw  []byte // the payload with its generic header
	Body []byte // the payload without its generic header
}

// Message is a parsed ISAKMP message: the header and the payload chain,
// decrypted if it was encrypted. Raw keeps the bytes the payloads point into.
type Message struct {
	Header   HeaderFields
	Payloads []Payload
}

// First returns the first payload of type t, or nil.
func (m *Message) First(t PayloadType) *Payload {
	for i := range m.Payloads {
		if m.Payloads[i].Type == t {
			return &m.Payloads[i]
		}
	}
	return nil
}

// All returns every payload of type t.
func (m *Message) All(t PayloadType) []Payload {
	var out []Payload
	for _, p := range m.Payloads {
		if p.Type == t {
			out = append(out, p)
		}
	}
	return out
}

// Types returns the payload types in order, for errors and logs.
func (m *Message) Types() []PayloadType {
	out := make([]PayloadType, len(m.Payloads))
	for i, p := range m.Payloads {
		out[i] = p.Type
	}
	return out
}

// ParsePayloads parses the payload chain that starts with a payload of type
// first. Trailing bytes are refused unless padded is set: an encrypted body
// carries block padding after its last payload (RFC 2408 §3.5 note).
func ParsePayloads(first PayloadType, b []byte, padded bool) ([]Payload, error) {
	var out []Payload
	next := first
	for next != PayloadNone {
		if len(out) == maxPayloads {
			return nil, fmt.Errorf("%w: more than %d payloads", ErrMalformed, maxPayloads)
		}
		if len(b) < genericHeaderSize {
			return nil, fmt.Errorf("%w: %v payload truncated", ErrMalformed, next)
		}
		n := int(binary.BigEndian.Uint16(b[2:]))
		if n < genericHeaderSize || n > len(b) {
			return nil, fmt.Errorf("%w: %v payload length %d of %d bytes", ErrMalformed, next, n, len(b))
		}
		out = append(out, Payload{Type: next, Raw: b[:n:n], Body: b[genericHeaderSize:n:n]})
		next = PayloadType(b[0])
		b = b[n:]
	}
	if len(b) > 0 && !padded {
		return nil, fmt.Errorf("%w: %d bytes after the last payload", ErrMalformed, len(b))
	}
	return out, nil
}

// ParseMessage parses a plaintext message. Encrypted messages are parsed
// with ParsePayloads after decryption.
func ParseMessage(b []byte) (*Message, error) {
	h := Header(b)
	if !h.IsValid() {
		return nil, fmt.Errorf("%w: bad header or length", ErrMalformed)
	}
	if h.Version()>>4 != Version>>4 {
		return nil, fmt.Errorf("%w: major version %d", ErrMalformed, h.Version()>>4)
	}
	if h.Flags()&FlagEncryption != 0 {
		return nil, fmt.Errorf("%w: message is encrypted", ErrMalformed)
	}
	ps, err := ParsePayloads(h.NextPayload(), b[HeaderSize:], false)
	if err != nil {
		return nil, err
	}
	return &Message{Header: h.Fields(), Payloads: ps}, nil
}

// outPayload is a payload to send: its type and body.
type outPayload struct {
	Type PayloadType
	Body []byte
}

// appendPayloads appends the payload chain ps to b, each with its generic
// header; the last one's next payload is none.
func appendPayloads(b []byte, ps []outPayload) []byte {
	for i, p := range ps {
		next := PayloadNone
		if i+1 < len(ps) {
			next = ps[i+1].Type
		}
		b = append(b, byte(next), 0)
		b = binary.BigEndian.AppendUint16(b, uint16(genericHeaderSize+len(p.Body)))
		b = append(b, p.Body...)
	}
	return b
}

// encodeMessage returns a plaintext message with header fields h and
// payloads ps; it fills in the next payload and length fields.
func encodeMessage(h HeaderFields, ps []outPayload) []byte {
	b := make([]byte, HeaderSize, 512)
	b = appendPayloads(b, ps)
	h.NextPayload = PayloadNone
	if len(ps) > 0 {
		h.NextPayload = ps[0].Type
	}
	h.Length = uint32(len(b))
	Header(b).Encode(&h)
	return b
}

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

// IDType is an identification type (RFC 2407 §4.6.2.1).
type IDType uint8

// Identification types.
const (
	IDIPv4Addr       IDType = 1
	IDFQDN           IDType = 2
	IDUserFQDN       IDType = 3
	IDIPv4AddrSubnet IDType = 4
	IDIPv6Addr       IDType = 5
	IDIPv6AddrSubnet IDType = 6
	IDIPv4AddrRange  IDType = 7
	IDIPv6AddrRange  IDType = 8
	IDDERASN1DN      IDType = 9
)

// ID is an identification payload (RFC 2407 §4.6.2).
type ID struct {
	Type     IDType
	Protocol uint8
	Port     uint16
	Data     []byte
}

// ParseID parses the body of an identification payload.
func ParseID(body []byte) (*ID, error) {
	s := cryptobyte.String(body)
	var id ID
	var t uint8
	if !s.ReadUint8(&t) || !s.ReadUint8(&id.Protocol) || !s.ReadUint16(&id.Port) {
		return nil, fmt.Errorf("%w: ID payload truncated", ErrMalformed)
	}
	id.Type = IDType(t)
	id.Data = append([]byte(nil), s...)
	want := map[IDType]int{IDIPv4Addr: 4, IDIPv6Addr: 16, IDIPv4AddrSubnet: 8, IDIPv6AddrSubnet: 32, IDIPv4AddrRange: 8, IDIPv6AddrRange: 32}
	if n, ok := want[id.Type]; ok && len(id.Data) != n {
		return nil, fmt.Errorf("%w: ID type %d with %d bytes", ErrMalformed, t, len(id.Data))
	}
	if len(id.Data) == 0 {
		return nil, fmt.Errorf("%w: empty ID payload", ErrMalformed)
	}
	return &id, nil
}

func (id *ID) marshal() []byte {
	b := []byte{byte(id.Type), id.Protocol}
	b = binary.BigEndian.AppendUint16(b, id.Port)
	return append(b, id.Data...)
}

// NotifyType is a notify message type (RFC 2408 §3.14.1, RFC 2407 §4.6.3).
type NotifyType uint16

// Notify message types ISM sends or acts on.
const (
	NotifyInvalidPayloadType     NotifyType = 1
	NotifyInvalidCookie          NotifyType = 4
	NotifyInvalidExchangeType    NotifyType = 7
	NotifyInvalidMessageID       NotifyType = 9
	NotifyInvalidSPI             NotifyType = 11
	NotifyAttributesNotSupported NotifyType = 13
	NotifyNoProposalChosen       NotifyType = 14
	NotifyBadProposalSyntax      NotifyType = 15
	NotifyPayloadMalformed       NotifyType = 16
	NotifyInvalidKeyInformation  NotifyType = 17
	NotifyInvalidIDInformation   NotifyType = 18
	NotifyInvalidCertificate     NotifyType = 20
	NotifyInvalidHashInformation NotifyType = 23
	NotifyAuthenticationFailed   NotifyType = 24
	NotifyInvalidSignature       NotifyType = 25
	NotifyResponderLifetime      NotifyType = 24576 // RFC 2407 §4.6.3.1
	NotifyReplayStatus           NotifyType = 24577
	NotifyInitialContact         NotifyType = 24578 // RFC 2407 §4.6.3.3
	NotifyDPDRUThere             NotifyType = 36136 // RFC 3706 §5.1
	NotifyDPDRUThereAck          NotifyType = 36137
)

var notifyNames = map[NotifyType]string{
	NotifyInvalidPayloadType: "INVALID-PAYLOAD-TYPE", NotifyInvalidCookie: "INVALID-COOKIE",
	NotifyInvalidExchangeType: "INVALID-EXCHANGE-TYPE", NotifyInvalidMessageID: "INVALID-MESSAGE-ID",
	NotifyInvalidSPI: "INVALID-SPI", NotifyAttributesNotSupported: "ATTRIBUTES-NOT-SUPPORTED",
	NotifyNoProposalChosen: "NO-PROPOSAL-CHOSEN", NotifyBadProposalSyntax: "BAD-PROPOSAL-SYNTAX",
	NotifyPayloadMalformed: "PAYLOAD-MALFORMED", NotifyInvalidKeyInformation: "INVALID-KEY-INFORMATION",
	NotifyInvalidIDInformation: "INVALID-ID-INFORMATION", NotifyInvalidCertificate: "INVALID-CERTIFICATE",
	NotifyInvalidHashInformation: "INVALID-HASH-INFORMATION", NotifyAuthenticationFailed: "AUTHENTICATION-FAILED",
	NotifyInvalidSignature: "INVALID-SIGNATURE", NotifyResponderLifetime: "RESPONDER-LIFETIME",
	NotifyReplayStatus: "REPLAY-STATUS", NotifyInitialContact: "INITIAL-CONTACT",
	NotifyDPDRUThere: "R-U-THERE", NotifyDPDRUThereAck: "R-U-THERE-ACK",
}

func (n NotifyType) String() string {
	if s, ok := notifyNames[n]; ok {
		return s
	}
	return fmt.Sprintf("NOTIFY-%d", uint16(n))
}

// IsError reports whether n is an error type (RFC 2408 §3.14.1: 1–8191).
func (n NotifyType) IsError() bool { return n >= 1 && n < 8192 }

// Notify is a notification payload (RFC 2408 §3.14).
type Notify struct {
	DOI      uint32
	Protocol uint8
	Type     NotifyType
	SPI      []byte
	Data     []byte
}

// ParseNotify parses the body of a notification payload.
func ParseNotify(body []byte) (*Notify, error) {
	s := cryptobyte.String(body)
	var n Notify
	var spiSize uint8
	var t uint16
	var spi []byte
	if !s.ReadUint32(&n.DOI) || !s.ReadUint8(&n.Protocol) || !s.ReadUint8(&spiSize) ||
		!s.ReadUint16(&t) || !s.ReadBytes(&spi, int(spiSize)) {
		return nil, fmt.Errorf("%w: notify payload truncated", ErrMalformed)
	}
	n.Type = NotifyType(t)
	n.SPI = append([]byte(nil), spi...)
	n.Data = append([]byte(nil), s...)
	return &n, nil
}

func (n *Notify) marshal() []byte {
	b := binary.BigEndian.AppendUint32(nil, n.DOI)
	b = append(b, n.Protocol, byte(len(n.SPI)))
	b = binary.BigEndian.AppendUint16(b, uint16(n.Type))
	b = append(b, n.SPI...)
	return append(b, n.Data...)
}

// Delete is a delete payload (RFC 2408 §3.15).
type Delete struct {
	DOI      uint32
	Protocol uint8
	SPISize  uint8
	SPIs     [][]byte
}

// ParseDelete parses the body of a delete payload.
func ParseDelete(body []byte) (*Delete, error) {
	s := cryptobyte.String(body)
	var d Delete
	var n uint16
	if !s.ReadUint32(&d.DOI) || !s.ReadUint8(&d.Protocol) || !s.ReadUint8(&d.SPISize) || !s.ReadUint16(&n) {
		return nil, fmt.Errorf("%w: delete payload truncated", ErrMalformed)
	}
	if d.SPISize == 0 || int(n)*int(d.SPISize) != len(s) {
		return nil, fmt.Errorf("%w: delete payload of %d SPIs of %d bytes in %d bytes", ErrMalformed, n, d.SPISize, len(s))
	}
	for range n {
		var spi []byte
		s.ReadBytes(&spi, int(d.SPISize))
		d.SPIs = append(d.SPIs, append([]byte(nil), spi...))
	}
	return &d, nil
}

func (d *Delete) marshal() []byte {
	b := binary.BigEndian.AppendUint32(nil, d.DOI)
	b = append(b, d.Protocol, d.SPISize)
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.SPIs)))
	for _, s := range d.SPIs {
		b = append(b, s...)
	}
	return b
}

// Cert is a certificate payload (RFC 2408 §3.9).
type Cert struct {
	Encoding uint8
	Data     []byte
}

// CertX509Signature is the X.509 signature certificate encoding.
const CertX509Signature = 4

// ParseCert parses the body of a certificate or certificate request
// payload; both are an encoding byte and data.
func ParseCert(body []byte) (*Cert, error) {
	if len(body) < 1 {
		return nil, fmt.Errorf("%w: certificate payload truncated", ErrMalformed)
	}
	return &Cert{Encoding: body[0], Data: append([]byte(nil), body[1:]...)}, nil
}

func (c *Cert) marshal() []byte { return append([]byte{c.Encoding}, c.Data...) }

// NATOA is a NAT original address payload (RFC 3947 §5.2).
type NATOA struct {
	Addr netip.Addr
}

// ParseNATOA parses the body of a NAT-OA payload.
func ParseNATOA(body []byte) (*NATOA, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("%w: NAT-OA truncated", ErrMalformed)
	}
	want := map[IDType]int{IDIPv4Addr: 4, IDIPv6Addr: 16}[IDType(body[0])]
	if want == 0 || len(body) != 4+want {
		return nil, fmt.Errorf("%w: NAT-OA type %d of %d bytes", ErrMalformed, body[0], len(body))
	}
	a, _ := netip.AddrFromSlice(body[4:])
	return &NATOA{Addr: a}, nil
}
