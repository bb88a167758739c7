package v2

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The IKE header (RFC 7296 §3.1):
//
//	                     1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       IKE SA Initiator's SPI                  |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       IKE SA Responder's SPI                  |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          Message ID                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                            Length                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	hdrSPIi     = 0
	hdrSPIr     = 8
	hdrNext     = 16
	hdrVersion  = 17
	hdrExchange = 18
	hdrFlags    = 19
	hdrMsgID    = 20
	hdrLength   = 24
)

// Sizes.
const (
	// HeaderSize is the length of the IKE header.
	HeaderSize = 28
	// payloadHeaderSize is the generic payload header (§3.2).
	payloadHeaderSize = 4
	// MaxMessageSize bounds what the daemon accepts and builds: the
	// largest UDP payload.
	MaxMessageSize = 65535
	// Version is the major and minor version byte this package speaks
	// (§3.1: major 2, minor 0).
	Version = 0x20
)

// ExchangeType is the exchange a message belongs to (§3.1).
type ExchangeType uint8

// Exchange types.
const (
	IKESAInit       ExchangeType = 34
	IKEAuth         ExchangeType = 35
	CreateChildSA   ExchangeType = 36
	Informational   ExchangeType = 37
	IKEIntermediate ExchangeType = 43 // RFC 9242 §3.2
	IKEFollowupKE   ExchangeType = 44 // RFC 9370 §2.2.4
)

func (e ExchangeType) String() string {
	switch e {
	case IKESAInit:
		return "IKE_SA_INIT"
	case IKEAuth:
		return "IKE_AUTH"
	case CreateChildSA:
		return "CREATE_CHILD_SA"
	case Informational:
		return "INFORMATIONAL"
	case IKEIntermediate:
		return "IKE_INTERMEDIATE"
	case IKEFollowupKE:
		return "IKE_FOLLOWUP_KE"
	}
	return fmt.Sprintf("exchange-%d", uint8(e))
}

// Flags are the header flags (§3.1).
type Flags uint8

// Flags.
const (
	FlagInitiator Flags = 0x08 // sent by the original initiator of the IKE SA
	FlagVersion   Flags = 0x10 // can speak a higher major version
	FlagResponse  Flags = 0x20 // a response to a request with the same message ID
)

// PayloadType is the type of a payload, as the Next Payload field names it
// (§3.2).
type PayloadType uint8

// Payload types.
const (
	PayloadNone      PayloadType = 0
	PayloadSA        PayloadType = 33
	PayloadKE        PayloadType = 34
	PayloadIDi       PayloadType = 35
	PayloadIDr       PayloadType = 36
	PayloadCERT      PayloadType = 37
	PayloadCERTREQ   PayloadType = 38
	PayloadAUTH      PayloadType = 39
	PayloadNonce     PayloadType = 40
	PayloadNotify    PayloadType = 41
	PayloadDelete    PayloadType = 42
	PayloadVendorID  PayloadType = 43
	PayloadTSi       PayloadType = 44
	PayloadTSr       PayloadType = 45
	PayloadSK        PayloadType = 46
	PayloadCP        PayloadType = 47
	PayloadEAP       PayloadType = 48
	PayloadSKF       PayloadType = 53 // Encrypted Fragment (RFC 7383 §2.5)
	payloadFirstType             = PayloadSA
	payloadLastType              = PayloadEAP
)

var payloadNames = map[PayloadType]string{
	PayloadNone: "none", PayloadSA: "SA", PayloadKE: "KE", PayloadIDi: "IDi", PayloadIDr: "IDr",
	PayloadCERT: "CERT", PayloadCERTREQ: "CERTREQ", PayloadAUTH: "AUTH", PayloadNonce: "Nonce",
	PayloadNotify: "N", PayloadDelete: "D", PayloadVendorID: "V", PayloadTSi: "TSi", PayloadTSr: "TSr",
	PayloadSK: "SK", PayloadCP: "CP", PayloadEAP: "EAP", PayloadSKF: "SKF",
}

func (p PayloadType) String() string {
	if s, ok := payloadNames[p]; ok {
		return s
	}
	return fmt.Sprintf("payload-%d", uint8(p))
}

// once reports whether a payload type may appear at most once in a
// message: every type of §3 but N, D, V, CERT and CERTREQ (§1.2–§1.4 show
// one of each; a second is malformed).
func (p PayloadType) once() bool {
	switch p {
	case PayloadNotify, PayloadDelete, PayloadVendorID, PayloadCERT, PayloadCERTREQ:
		return false
	}
	return true
}

// known reports whether this package understands the payload type.
func (p PayloadType) known() bool {
	return p >= payloadFirstType && p <= payloadLastType || p == PayloadSKF
}

// Header is the IKE header. It is a plain value.
type Header struct {
	SPIi, SPIr uint64
	Next       PayloadType // the first payload
	Version    uint8
	Exchange   ExchangeType
	Flags      Flags
	MessageID  uint32
	Length     uint32
}

// Errors of parsing. A parse error of a message that was not decrypted is
// never answered (§2.21.1: "the message is simply dropped").
var (
	ErrMalformed       = errors.New("v2: malformed message")
	ErrVersion         = errors.New("v2: unsupported major version")
	errUnknownCritical = errors.New("v2: unsupported critical payload")
)

// ParseHeader reads the header of b and checks its length against b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than the header", ErrMalformed, len(b))
	}
	h := Header{
		SPIi:      binary.BigEndian.Uint64(b[hdrSPIi:]),
		SPIr:      binary.BigEndian.Uint64(b[hdrSPIr:]),
		Next:      PayloadType(b[hdrNext]),
		Version:   b[hdrVersion],
		Exchange:  ExchangeType(b[hdrExchange]),
		Flags:     Flags(b[hdrFlags]),
		MessageID: binary.BigEndian.Uint32(b[hdrMsgID:]),
		Length:    binary.BigEndian.Uint32(b[hdrLength:]),
	}
	if h.Version>>4 != 2 {
		// §2.5: a higher major version is answered by
		// INVALID_MAJOR_VERSION; the daemon counts and drops it.
		return h, fmt.Errorf("%w %d", ErrVersion, h.Version>>4)
	}
	if int64(h.Length) != int64(len(b)) {
		return h, fmt.Errorf("%w: length field %d, datagram %d", ErrMalformed, h.Length, len(b))
	}
	return h, nil
}

// IsResponse reports whether the message is a response.
func (h Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// marshal appends the header to b.
func (h Header) marshal(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, h.SPIi)
	b = binary.BigEndian.AppendUint64(b, h.SPIr)
	b = append(b, byte(h.Next), h.Version, byte(h.Exchange), byte(h.Flags))
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// Payload is one payload of a message: its type, critical bit and body
// (the bytes after the generic payload header). For an SK payload, Inner
// is the type of the first payload inside it (the SK header's Next
// Payload field, §3.14).
type Payload struct {
	Type     PayloadType
	Critical bool
	Body     []byte
	Inner    PayloadType
}

// Message is a parsed or to-be-built IKE message: the header and the
// payloads in order. The payloads of a decrypted SK payload replace it.
type Message struct {
	Header
	Payloads []Payload
	raw      []byte // the datagram it was parsed from (RealMessage of §2.15)
	// inner and plain are, once the SK payload is decrypted, the type of
	// its first payload and its plaintext without padding: the
	// IntAuth_*P of RFC 9242 §3.3.2.
	inner PayloadType
	plain []byte
}

// ParseMessage parses a datagram: the header and the chain of payloads.
// An SK payload must be the last (§3.14); its body stays encrypted. It
// never reads past b and never panics. An unknown payload with the
// critical bit set is an error wrapping errUnknownCritical (§2.5); one
// without it is skipped.
func ParseMessage(b []byte) (*Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	ps, err := parsePayloads(h.Next, b[HeaderSize:], true)
	if err != nil {
		return nil, err
	}
	return &Message{Header: h, Payloads: ps, raw: b}, nil
}

// parsePayloads walks a chain of payloads starting with type first. With
// outer set an SK payload may end the chain.
func parsePayloads(first PayloadType, b []byte, outer bool) ([]Payload, error) {
	var ps []Payload
	seen := map[PayloadType]bool{}
	next := first
	for next != PayloadNone {
		if len(b) < payloadHeaderSize {
			return nil, fmt.Errorf("%w: %v payload header truncated", ErrMalformed, next)
		}
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n < payloadHeaderSize || n > len(b) {
			return nil, fmt.Errorf("%w: %v payload length %d of %d bytes", ErrMalformed, next, n, len(b))
		}
		p := Payload{Type: next, Critical: b[1]&0x80 != 0, Body: b[payloadHeaderSize:n]}
		following := PayloadType(b[0])
		b = b[n:]
		if p.Type == PayloadSK || p.Type == PayloadSKF {
			// §3.14: "the Encrypted payload, if present in a message,
			// MUST be the last payload in the message"; its Next
			// Payload names the first payload inside.
			if !outer || len(b) != 0 {
				return nil, fmt.Errorf("%w: SK payload not last", ErrMalformed)
			}
			p.Inner = following
			following = PayloadNone
		}
		if !p.Type.known() {
			if p.Critical {
				return nil, fmt.Errorf("%w: type %d", errUnknownCritical, uint8(p.Type))
			}
			next = following
			continue // §2.5: skipped
		}
		if p.Type.once() {
			if seen[p.Type] {
				return nil, fmt.Errorf("%w: two %v payloads", ErrMalformed, p.Type)
			}
			seen[p.Type] = true
		}
		ps = append(ps, p)
		next = following
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last payload", ErrMalformed, len(b))
	}
	return ps, nil
}

// marshalPayloads appends the chain of payloads to b. The SK or SKF
// payload, if any, must be last; its Next Payload is Inner.
func marshalPayloads(b []byte, ps []Payload) []byte {
	for i, p := range ps {
		next := PayloadNone
		if i+1 < len(ps) {
			next = ps[i+1].Type
		}
		if p.Type == PayloadSK || p.Type == PayloadSKF {
			next = p.Inner
		}
		flags := byte(0)
		if p.Critical {
			flags = 0x80
		}
		b = append(b, byte(next), flags)
		b = binary.BigEndian.AppendUint16(b, uint16(payloadHeaderSize+len(p.Body)))
		b = append(b, p.Body...)
	}
	return b
}

// Marshal returns the message in wire form, with the header's Next
// Payload and Length set from the payloads.
func (m *Message) Marshal() []byte {
	h := m.Header
	h.Next = PayloadNone
	if len(m.Payloads) > 0 {
		h.Next = m.Payloads[0].Type
	}
	n := HeaderSize
	for _, p := range m.Payloads {
		n += payloadHeaderSize + len(p.Body)
	}
	h.Length = uint32(n)
	b := make([]byte, 0, n)
	b = h.marshal(b)
	return marshalPayloads(b, m.Payloads)
}

// Get returns the first payload of type t.
func (m *Message) Get(t PayloadType) (Payload, bool) {
	for _, p := range m.Payloads {
		if p.Type == t {
			return p, true
		}
	}
	return Payload{}, false
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

// Types lists the payload types in order, for logs and errors.
func (m *Message) Types() []PayloadType {
	out := make([]PayloadType, len(m.Payloads))
	for i, p := range m.Payloads {
		out[i] = p.Type
	}
	return out
}

// Notifies returns the message's Notify payloads, parsed; malformed ones
// are an error.
func (m *Message) Notifies() ([]Notify, error) {
	var out []Notify
	for _, p := range m.All(PayloadNotify) {
		var n Notify
		if err := n.unmarshal(p.Body); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// Notify returns the first notify of type t in the message.
func (m *Message) Notify(t NotifyType) (Notify, bool) {
	ns, _ := m.Notifies()
	for _, n := range ns {
		if n.Type == t {
			return n, true
		}
	}
	return Notify{}, false
}

// add appends a payload built from a body.
func (m *Message) add(t PayloadType, body []byte) {
	m.Payloads = append(m.Payloads, Payload{Type: t, Body: body})
}

// addNotify appends a Notify payload.
func (m *Message) addNotify(n Notify) { m.add(PayloadNotify, n.marshal()) }
