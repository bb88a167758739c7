package v1

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The ISAKMP header (RFC 2408 §3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	!                          Initiator                            !
//	!                            Cookie                             !
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	!                          Responder                            !
//	!                            Cookie                             !
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	!  Next Payload ! MjVer ! MnVer ! Exchange Type !     Flags     !
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	!                          Message ID                           !
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	!                            Length                             !
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	hdrICookie   = 0
	hdrRCookie   = 8
	hdrNext      = 16
	hdrVersion   = 17
	hdrExchange  = 18
	hdrFlags     = 19
	hdrMessageID = 20
	hdrLength    = 24
)

// HeaderSize is the size of the ISAKMP header.
const HeaderSize = 28

// MaxMessageSize bounds the messages the daemon accepts and builds; it is
// larger than any message of the exchanges ISM runs (certificates included).
const MaxMessageSize = 16 << 10

// Version is ISAKMP major version 1, minor 0 (RFC 2408 §3.1).
const Version = 0x10

// Header flags (RFC 2408 §3.1).
const (
	FlagEncryption = 0x01
	FlagCommit     = 0x02
	FlagAuthOnly   = 0x04
)

// Cookie is an ISAKMP cookie (RFC 2408 §2.5.3).
type Cookie [8]byte

// IsZero reports whether c is all zeros (a responder cookie not yet known).
func (c Cookie) IsZero() bool { return c == Cookie{} }

func (c Cookie) String() string { return fmt.Sprintf("%016x", c[:]) }

// Header is a view over the bytes of an ISAKMP header. Check IsValid first:
// the accessors do not check bounds.
type Header []byte

// HeaderFields are the fields Encode writes.
type HeaderFields struct {
	ICookie, RCookie Cookie
	NextPayload      PayloadType
	Exchange         ExchangeType
	Flags            uint8
	MessageID        uint32
	Length           uint32
}

// ErrMalformed is wrapped by every error about a message that does not parse.
var ErrMalformed = errors.New("v1: malformed message")

// IsValid reports whether b holds a whole header whose length field agrees
// with len(b): ISAKMP over UDP carries exactly one message per datagram.
func (h Header) IsValid() bool {
	if len(h) < HeaderSize {
		return false
	}
	return int(binary.BigEndian.Uint32(h[hdrLength:])) == len(h)
}

// ICookie returns the initiator cookie.
func (h Header) ICookie() (c Cookie) { copy(c[:], h[hdrICookie:]); return c }

// RCookie returns the responder cookie.
func (h Header) RCookie() (c Cookie) { copy(c[:], h[hdrRCookie:]); return c }

// NextPayload returns the type of the first payload.
func (h Header) NextPayload() PayloadType { return PayloadType(h[hdrNext]) }

// Version returns the major and minor version byte.
func (h Header) Version() uint8 { return h[hdrVersion] }

// Exchange returns the exchange type.
func (h Header) Exchange() ExchangeType { return ExchangeType(h[hdrExchange]) }

// Flags returns the flags.
func (h Header) Flags() uint8 { return h[hdrFlags] }

// MessageID returns the message ID.
func (h Header) MessageID() uint32 { return binary.BigEndian.Uint32(h[hdrMessageID:]) }

// Length returns the length field.
func (h Header) Length() uint32 { return binary.BigEndian.Uint32(h[hdrLength:]) }

// Encode writes f into the first HeaderSize bytes of h.
func (h Header) Encode(f *HeaderFields) {
	copy(h[hdrICookie:], f.ICookie[:])
	copy(h[hdrRCookie:], f.RCookie[:])
	h[hdrNext] = byte(f.NextPayload)
	h[hdrVersion] = Version
	h[hdrExchange] = byte(f.Exchange)
	h[hdrFlags] = f.Flags
	binary.BigEndian.PutUint32(h[hdrMessageID:], f.MessageID)
	binary.BigEndian.PutUint32(h[hdrLength:], f.Length)
}

// Fields returns the header's fields.
func (h Header) Fields() HeaderFields {
	return HeaderFields{
		ICookie: h.ICookie(), RCookie: h.RCookie(), NextPayload: h.NextPayload(),
		Exchange: h.Exchange(), Flags: h.Flags(), MessageID: h.MessageID(), Length: h.Length(),
	}
}

// ExchangeType is an ISAKMP exchange type (RFC 2408 §3.1, RFC 2409 §5).
type ExchangeType uint8

// Exchange types.
const (
	ExchangeMain          ExchangeType = 2  // identity protection
	ExchangeAggressive    ExchangeType = 4  // aggressive
	ExchangeInformational ExchangeType = 5  // informational
	ExchangeQuick         ExchangeType = 32 // quick mode (RFC 2409 §5.5)
)

func (e ExchangeType) String() string {
	switch e {
	case ExchangeMain:
		return "main"
	case ExchangeAggressive:
		return "aggressive"
	case ExchangeInformational:
		return "informational"
	case ExchangeQuick:
		return "quick"
	}
	return fmt.Sprintf("exchange-%d", uint8(e))
}

// PayloadType is an ISAKMP payload type (RFC 2408 §3.1, RFC 3947 §3).
type PayloadType uint8

// Payload types.
const (
	PayloadNone      PayloadType = 0
	PayloadSA        PayloadType = 1
	PayloadProposal  PayloadType = 2
	PayloadTransform PayloadType = 3
	PayloadKE        PayloadType = 4
	PayloadID        PayloadType = 5
	PayloadCert      PayloadType = 6
	PayloadCertReq   PayloadType = 7
	PayloadHash      PayloadType = 8
	PayloadSig       PayloadType = 9
	PayloadNonce     PayloadType = 10
	PayloadNotify    PayloadType = 11
	PayloadDelete    PayloadType = 12
	PayloadVendorID  PayloadType = 13
	PayloadNATD      PayloadType = 20 // RFC 3947 §3.2
	PayloadNATOA     PayloadType = 21 // RFC 3947 §5.2
)

var payloadNames = map[PayloadType]string{
	PayloadSA: "SA", PayloadProposal: "P", PayloadTransform: "T", PayloadKE: "KE",
	PayloadID: "ID", PayloadCert: "CERT", PayloadCertReq: "CR", PayloadHash: "HASH",
	PayloadSig: "SIG", PayloadNonce: "NONCE", PayloadNotify: "N", PayloadDelete: "D",
	PayloadVendorID: "VID", PayloadNATD: "NAT-D", PayloadNATOA: "NAT-OA",
}

func (p PayloadType) String() string {
	if n, ok := payloadNames[p]; ok {
		return n
	}
	return fmt.Sprintf("payload-%d", uint8(p))
}
