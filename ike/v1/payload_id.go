package v1

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/crypto/cryptobyte"
)

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
