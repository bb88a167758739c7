package v1

import (
	"encoding/binary"
	"fmt"
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
