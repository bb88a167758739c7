package v2

// The payloads of key exchange, identity and authentication, and the
// informational ones (RFC 7296 §3.4 to §3.11); SA and TS payloads are in
// payloads.go.

import (
	"encoding/binary"
	"fmt"
)

// KE is a Key Exchange payload (§3.4).
type KE struct {
	Group uint16
	Data  []byte
}

func (k *KE) marshal() []byte {
	b := binary.BigEndian.AppendUint16(nil, k.Group)
	b = append(b, 0, 0)
	return append(b, k.Data...)
}

func (k *KE) unmarshal(body []byte) error {
	*k = KE{}
	if len(body) < 4 {
		return malformed("KE payload")
	}
	k.Group = binary.BigEndian.Uint16(body)
	k.Data = append([]byte(nil), body[4:]...)
	return nil
}

// IDType is an identification type (§3.5).
type IDType uint8

// Identification types.
const (
	IDIPv4     IDType = 1
	IDFQDN     IDType = 2
	IDRFC822   IDType = 3
	IDIPv6     IDType = 5
	IDDERASN1  IDType = 9
	IDDERGN    IDType = 10
	IDKeyID    IDType = 11
	idHdrSize         = 4
	certHdrLen        = 1
)

// ID is an IDi or IDr payload (§3.5).
type ID struct {
	Type IDType
	Data []byte
}

func (id *ID) marshal() []byte {
	return append([]byte{byte(id.Type), 0, 0, 0}, id.Data...)
}

func (id *ID) unmarshal(body []byte) error {
	*id = ID{}
	if len(body) < idHdrSize+1 {
		return malformed("ID payload")
	}
	id.Type = IDType(body[0])
	id.Data = append([]byte(nil), body[idHdrSize:]...)
	switch id.Type {
	case IDIPv4:
		if len(id.Data) != 4 {
			return malformed("ID_IPV4_ADDR length")
		}
	case IDIPv6:
		if len(id.Data) != 16 {
			return malformed("ID_IPV6_ADDR length")
		}
	}
	return nil
}

// Cert is a CERT or CERTREQ payload (§3.6, §3.7): an encoding and data.
type Cert struct {
	Encoding uint8
	Data     []byte
}

func (c *Cert) marshal() []byte { return append([]byte{c.Encoding}, c.Data...) }

func (c *Cert) unmarshal(body []byte) error {
	*c = Cert{}
	if len(body) < certHdrLen {
		return malformed("CERT payload")
	}
	c.Encoding, c.Data = body[0], append([]byte(nil), body[1:]...)
	return nil
}

// AuthMethod is an AUTH payload's method (§3.8).
type AuthMethod uint8

// Authentication methods.
const (
	AuthRSASig      AuthMethod = 1 // RSASSA-PKCS1-v1_5 with SHA-1 (§3.8)
	AuthSharedKey   AuthMethod = 2 // Shared Key Message Integrity Code
	AuthDSSSig      AuthMethod = 3
	AuthECDSAP256   AuthMethod = 9  // ECDSA with SHA-256 on P-256 (RFC 4754)
	AuthECDSAP384   AuthMethod = 10 // ECDSA with SHA-384 on P-384 (RFC 4754)
	AuthECDSAP521   AuthMethod = 11 // ECDSA with SHA-512 on P-521 (RFC 4754)
	AuthDigSig      AuthMethod = 14 // Digital Signature (RFC 7427)
	certX509        uint8      = 4  // CERT and CERTREQ encoding: X.509 Certificate - Signature (§3.6)
	certReqHashSize            = 20 // a CERTREQ names a CA by the SHA-1 of its public key (§3.7)
)

// Auth is an AUTH payload.
type Auth struct {
	Method AuthMethod
	Data   []byte
}

func (a *Auth) marshal() []byte { return append([]byte{byte(a.Method), 0, 0, 0}, a.Data...) }

func (a *Auth) unmarshal(body []byte) error {
	*a = Auth{}
	if len(body) < 5 {
		return malformed("AUTH payload")
	}
	a.Method, a.Data = AuthMethod(body[0]), append([]byte(nil), body[4:]...)
	return nil
}

// Nonce sizes (§3.9: "between 16 and 256 octets").
const (
	minNonce = 16
	maxNonce = 256
)

// parseNonce checks a Nonce payload body and returns a copy.
func parseNonce(body []byte) ([]byte, error) {
	if len(body) < minNonce || len(body) > maxNonce {
		return nil, malformed(fmt.Sprintf("nonce of %d bytes", len(body)))
	}
	return append([]byte(nil), body...), nil
}

// Notify is a Notify payload (§3.10).
type Notify struct {
	Protocol Protocol
	SPI      []byte
	Type     NotifyType
	Data     []byte
}

func (n *Notify) marshal() []byte {
	b := []byte{byte(n.Protocol), byte(len(n.SPI))}
	b = binary.BigEndian.AppendUint16(b, uint16(n.Type))
	b = append(b, n.SPI...)
	return append(b, n.Data...)
}

func (n *Notify) unmarshal(body []byte) error {
	*n = Notify{}
	if len(body) < 4 || len(body) < 4+int(body[1]) {
		return malformed("Notify payload")
	}
	n.Protocol, n.Type = Protocol(body[0]), NotifyType(binary.BigEndian.Uint16(body[2:]))
	spi := int(body[1])
	n.SPI = append([]byte(nil), body[4:4+spi]...)
	n.Data = append([]byte(nil), body[4+spi:]...)
	return nil
}

// Delete is a Delete payload (§3.11): the SPIs of SAs of one protocol;
// for the IKE SA, no SPI.
type Delete struct {
	Protocol Protocol
	SPIs     []uint32 // ESP or AH SPIs
}

func (d *Delete) marshal() []byte {
	size := byte(4)
	if d.Protocol == ProtoIKE {
		size = 0
	}
	b := []byte{byte(d.Protocol), size}
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.SPIs)))
	for _, s := range d.SPIs {
		b = binary.BigEndian.AppendUint32(b, s)
	}
	return b
}

func (d *Delete) unmarshal(body []byte) error {
	*d = Delete{}
	if len(body) < 4 {
		return malformed("Delete payload")
	}
	d.Protocol = Protocol(body[0])
	size, n := int(body[1]), int(binary.BigEndian.Uint16(body[2:]))
	rest := body[4:]
	switch {
	case d.Protocol == ProtoIKE && size == 0 && n == 0 && len(rest) == 0:
		return nil
	case (d.Protocol == ProtoESP || d.Protocol == ProtoAH) && size == 4 && len(rest) == 4*n:
		for i := 0; i < n; i++ {
			d.SPIs = append(d.SPIs, binary.BigEndian.Uint32(rest[4*i:]))
		}
		return nil
	}
	return malformed("Delete payload")
}

// TS types (§3.13.1).
const (
	tsIPv4Range = 7
	tsIPv6Range = 8
)
