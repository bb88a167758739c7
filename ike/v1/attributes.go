package v1

import (
	"fmt"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// Phase 1 attribute classes (RFC 2409 Appendix A).
const (
	oakleyEncryption   = 1
	oakleyHash         = 2
	oakleyAuthMethod   = 3
	oakleyGroup        = 4
	oakleyLifeType     = 11
	oakleyLifeDuration = 12
	oakleyKeyLength    = 14
)

// Phase 1 attribute values (RFC 2409 Appendix A; AES: RFC 3602 §5.1 and the
// IANA registry; SHA2-256: RFC 4868 §4.1).
const (
	oakleyDESCBC     = 1
	oakley3DESCBC    = 5
	oakleyAESCBC     = 7
	oakleyMD5        = 1
	oakleySHA        = 2
	oakleySHA256     = 4
	oakleyPSK        = 1
	oakleyRSASig     = 3
	lifeTypeSeconds  = 1
	lifeTypeKilobyte = 2
)

// IPsec DOI SA attributes (RFC 2407 §4.5).
const (
	ipsecLifeType     = 1
	ipsecLifeDuration = 2
	ipsecGroup        = 3
	ipsecEncapMode    = 4
	ipsecAuthAlg      = 5
	ipsecKeyLength    = 6
)

// Encapsulation modes (RFC 2407 §4.5; UDP-encapsulated: RFC 3947 §5.1).
const (
	EncapTunnel            = 1
	EncapTransport         = 2
	EncapUDPTunnel         = 3
	EncapUDPTransport      = 4
	encapUDPTunnelDraft    = 61443 // draft-ietf-ipsec-nat-t-ike-00..02
	encapUDPTransportDraft = 61444
	espDES                 = 2 // ESP transform IDs, RFC 2407 §4.4.4
	esp3DES                = 3
	espNULL                = 11
	espAES                 = 12 // RFC 3602 §5.1
	espAESGCM8             = 18 // RFC 4106 §8.1
	espAESGCM12            = 19
	espAESGCM16            = 20
	ahMD5                  = 2 // AH transform IDs, RFC 2407 §4.4.3
	ahSHA                  = 3
	ahSHA256               = 5 // RFC 4868 §4.1
	ahSHA384               = 6
	ahSHA512               = 7
	authHMACMD5            = 1 // Authentication Algorithm values, RFC 2407 §4.5
	authHMACSHA            = 2
	authHMACSHA256         = 5 // RFC 4868 §4.1
	authHMACSHA384         = 6
	authHMACSHA512         = 7
	keyIKE                 = 1 // the Oakley transform ID, RFC 2407 §4.4.2
	maxLifetimeSeconds     = 0xffffffff
	bytesPerKilobyte       = 1024
)

// phase1Transform encodes an IKE policy as a phase 1 transform.
func phase1Transform(num uint8, p ike.Policy) Transform {
	t := Transform{Number: num, ID: keyIKE}
	switch p.Encryption {
	case ike.EncDES:
		t.Attrs = append(t.Attrs, Attr{oakleyEncryption, oakleyDESCBC})
	case ike.Enc3DES:
		t.Attrs = append(t.Attrs, Attr{oakleyEncryption, oakley3DESCBC})
	default:
		t.Attrs = append(t.Attrs, Attr{oakleyEncryption, oakleyAESCBC}, Attr{oakleyKeyLength, uint64(p.Encryption.KeyLen() * 8)})
	}
	t.Attrs = append(t.Attrs,
		Attr{oakleyHash, map[ike.Hash]uint64{ike.HashMD5: oakleyMD5, ike.HashSHA1: oakleySHA, ike.HashSHA256: oakleySHA256}[p.Hash]},
		Attr{oakleyAuthMethod, map[ike.AuthMethod]uint64{ike.AuthPSK: oakleyPSK, ike.AuthRSASig: oakleyRSASig}[p.Auth]},
		Attr{oakleyGroup, uint64(p.Group)},
		Attr{oakleyLifeType, lifeTypeSeconds},
		Attr{oakleyLifeDuration, uint64(policyLifetime(p) / time.Second)},
	)
	return t
}

func policyLifetime(p ike.Policy) time.Duration {
	if p.Lifetime <= 0 {
		return ike.DefaultIKELifetime
	}
	return p.Lifetime
}

// parsePhase1Transform decodes a phase 1 transform; the policy's Lifetime
// is the proposed lifetime in seconds (zero if none was proposed).
func parsePhase1Transform(t *Transform) (ike.Policy, error) {
	var p ike.Policy
	if t.ID != keyIKE {
		return p, fmt.Errorf("v1: phase 1 transform ID %d", t.ID)
	}
	var enc, keyLen uint64
	var lifeType uint64
	for _, a := range t.Attrs {
		switch a.Type {
		case oakleyEncryption:
			enc = a.Value
		case oakleyKeyLength:
			keyLen = a.Value
		case oakleyHash:
			p.Hash = map[uint64]ike.Hash{oakleyMD5: ike.HashMD5, oakleySHA: ike.HashSHA1, oakleySHA256: ike.HashSHA256}[a.Value]
			if p.Hash == 0 {
				return p, fmt.Errorf("v1: phase 1 hash %d not supported", a.Value)
			}
		case oakleyAuthMethod:
			p.Auth = map[uint64]ike.AuthMethod{oakleyPSK: ike.AuthPSK, oakleyRSASig: ike.AuthRSASig}[a.Value]
			if p.Auth == 0 {
				return p, fmt.Errorf("v1: phase 1 authentication method %d not supported", a.Value)
			}
		case oakleyGroup:
			p.Group = int(a.Value)
		case oakleyLifeType:
			lifeType = a.Value
		case oakleyLifeDuration:
			if lifeType == lifeTypeSeconds && a.Value <= maxLifetimeSeconds {
				p.Lifetime = time.Duration(a.Value) * time.Second
			}
		default:
			return p, fmt.Errorf("v1: phase 1 attribute %d not supported", a.Type)
		}
	}
	switch {
	case enc == oakleyDESCBC && keyLen == 0:
		p.Encryption = ike.EncDES
	case enc == oakley3DESCBC && keyLen == 0:
		p.Encryption = ike.Enc3DES
	case enc == oakleyAESCBC:
		p.Encryption = map[uint64]ike.Encryption{128: ike.EncAES128, 192: ike.EncAES192, 256: ike.EncAES256}[keyLen]
	}
	if p.Encryption == 0 || p.Hash == 0 || p.Auth == 0 || p.Group == 0 {
		return p, fmt.Errorf("v1: incomplete or unsupported phase 1 transform (encryption %d/%d)", enc, keyLen)
	}
	return p, nil
}

// childAttrs are the negotiated quick mode attributes besides the
// algorithms.
type childAttrs struct {
	Encap    uint64
	Group    int
	Lifetime ipsec.Lifetime
}

// udp reports whether the encapsulation mode is ESP-in-UDP.
func (c childAttrs) udp() bool {
	return c.Encap == EncapUDPTunnel || c.Encap == encapUDPTunnelDraft
}

// protocolID returns the IPsec DOI protocol of a transform.
func protocolID(t transform.Transform) uint8 {
	if t.Protocol == transform.AH {
		return ProtoAH
	}
	return ProtoESP
}

// ipsecTransform encodes a transform of the table with the quick mode
// attributes.
func ipsecTransform(num uint8, tr transform.Transform, c childAttrs) Transform {
	t := Transform{Number: num}
	if tr.Protocol == transform.AH {
		t.ID = map[transform.Integrity]uint8{transform.HMACMD596: ahMD5, transform.HMACSHA196: ahSHA,
			transform.HMACSHA256128: ahSHA256, transform.HMACSHA384192: ahSHA384, transform.HMACSHA512256: ahSHA512}[tr.Integrity]
	} else {
		switch tr.Cipher {
		case transform.CipherDESCBC:
			t.ID = espDES
		case transform.Cipher3DESCBC:
			t.ID = esp3DES
		case transform.CipherNull:
			t.ID = espNULL
		case transform.CipherAESCBC:
			t.ID = espAES
		case transform.CipherAESGCM:
			t.ID = map[int]uint8{8: espAESGCM8, 12: espAESGCM12, 16: espAESGCM16}[tr.AEADICVLen]
		}
	}
	if c.Lifetime.Time > 0 {
		secs := min(uint64(c.Lifetime.Time/time.Second), maxLifetimeSeconds)
		t.Attrs = append(t.Attrs, Attr{ipsecLifeType, lifeTypeSeconds}, Attr{ipsecLifeDuration, max(secs, 1)})
	}
	if c.Lifetime.Bytes > 0 {
		t.Attrs = append(t.Attrs, Attr{ipsecLifeType, lifeTypeKilobyte}, Attr{ipsecLifeDuration, max(c.Lifetime.Bytes/bytesPerKilobyte, 1)})
	}
	if c.Group != 0 {
		t.Attrs = append(t.Attrs, Attr{ipsecGroup, uint64(c.Group)})
	}
	t.Attrs = append(t.Attrs, Attr{ipsecEncapMode, c.Encap})
	if tr.Integrity != transform.IntegrityNone {
		t.Attrs = append(t.Attrs, Attr{ipsecAuthAlg, map[transform.Integrity]uint64{transform.HMACMD596: authHMACMD5,
			transform.HMACSHA196: authHMACSHA, transform.HMACSHA256128: authHMACSHA256,
			transform.HMACSHA384192: authHMACSHA384, transform.HMACSHA512256: authHMACSHA512}[tr.Integrity]})
	}
	if tr.Cipher == transform.CipherAESCBC || tr.Cipher == transform.CipherAESGCM {
		t.Attrs = append(t.Attrs, Attr{ipsecKeyLength, uint64(tr.KeyBits)})
	}
	return t
}

// parseIPsecTransform decodes a quick mode transform of protocol proto.
func parseIPsecTransform(proto uint8, t *Transform) (transform.Transform, childAttrs, error) {
	var c childAttrs
	tr := transform.Transform{Protocol: transform.ESP}
	var lifeType uint64
	var keyLen uint64
	for _, a := range t.Attrs {
		switch a.Type {
		case ipsecLifeType:
			lifeType = a.Value
		case ipsecLifeDuration:
			switch lifeType {
			case lifeTypeSeconds:
				c.Lifetime.Time = time.Duration(min(a.Value, maxLifetimeSeconds)) * time.Second
			case lifeTypeKilobyte:
				c.Lifetime.Bytes = min(a.Value, 1<<44) * bytesPerKilobyte
			default:
				return tr, c, fmt.Errorf("v1: life duration without a life type")
			}
		case ipsecGroup:
			c.Group = int(a.Value)
		case ipsecEncapMode:
			c.Encap = a.Value
		case ipsecAuthAlg:
			tr.Integrity = map[uint64]transform.Integrity{authHMACMD5: transform.HMACMD596, authHMACSHA: transform.HMACSHA196,
				authHMACSHA256: transform.HMACSHA256128, authHMACSHA384: transform.HMACSHA384192, authHMACSHA512: transform.HMACSHA512256}[a.Value]
			if tr.Integrity == transform.IntegrityNone {
				return tr, c, fmt.Errorf("v1: authentication algorithm %d not supported", a.Value)
			}
		case ipsecKeyLength:
			keyLen = a.Value
		default:
			return tr, c, fmt.Errorf("v1: IPsec attribute %d not supported", a.Type)
		}
	}
	switch proto {
	case ProtoAH:
		tr.Protocol = transform.AH
		want := map[uint8]transform.Integrity{ahMD5: transform.HMACMD596, ahSHA: transform.HMACSHA196,
			ahSHA256: transform.HMACSHA256128, ahSHA384: transform.HMACSHA384192, ahSHA512: transform.HMACSHA512256}[t.ID]
		if want == transform.IntegrityNone || tr.Integrity != want {
			return tr, c, fmt.Errorf("v1: AH transform %d with authentication %v", t.ID, tr.Integrity)
		}
	case ProtoESP:
		switch t.ID {
		case espDES:
			tr.Cipher, tr.KeyBits = transform.CipherDESCBC, 64
		case esp3DES:
			tr.Cipher, tr.KeyBits = transform.Cipher3DESCBC, 192
		case espNULL:
			tr.Cipher = transform.CipherNull
		case espAES:
			tr.Cipher, tr.KeyBits = transform.CipherAESCBC, int(keyLen)
			if keyLen == 0 {
				tr.KeyBits = 128 // RFC 3602 §5.1: the key length is optional, 128 by default
			}
		case espAESGCM8, espAESGCM12, espAESGCM16:
			tr.Cipher, tr.KeyBits = transform.CipherAESGCM, int(keyLen)
			tr.AEADICVLen = map[uint8]int{espAESGCM8: 8, espAESGCM12: 12, espAESGCM16: 16}[t.ID]
		default:
			return tr, c, fmt.Errorf("v1: ESP transform %d not supported", t.ID)
		}
	default:
		return tr, c, fmt.Errorf("v1: IPsec protocol %d not supported", proto)
	}
	if !tr.Valid() {
		return tr, c, fmt.Errorf("v1: transform %v not supported", tr)
	}
	return tr, c, nil
}
