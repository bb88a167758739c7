package ike

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ismgw/ism/ipsec"
)

// AuthMethod is an IKE policy's authentication method.
type AuthMethod uint8

// Authentication methods.
const (
	AuthPSK    AuthMethod = iota + 1 // pre-shared keys
	AuthRSASig                       // RSA signatures with X.509 certificates
	// AuthECDSASig is ECDSA signatures with X.509 certificates (P-256,
	// P-384 or P-521 keys; RFC 4754, RFC 7427): IKEv2 only.
	AuthECDSASig
)

func (a AuthMethod) String() string {
	switch a {
	case AuthPSK:
		return "pre-share"
	case AuthRSASig:
		return "rsa-sig"
	case AuthECDSASig:
		return "ecdsa-sig"
	}
	return fmt.Sprintf("auth-%d", uint8(a))
}

// Certificate reports whether the method authenticates with a certificate
// and a signature.
func (a AuthMethod) Certificate() bool { return a == AuthRSASig || a == AuthECDSASig }

// IDKind is the form of a phase 1 identity.
type IDKind uint8

// Identity kinds (RFC 2407 §4.6.2.1 names them ID_IPV4_ADDR, ID_FQDN, ...).
const (
	IDNone     IDKind = iota
	IDAddress         // an IPv4 or IPv6 address
	IDFQDN            // a fully qualified domain name
	IDUserFQDN        // user@fqdn
	IDDN              // an X.500 distinguished name (certificates)
)

// MaxIdentityLen is the longest FQDN or user@fqdn identity JUNOSe accepts.
const MaxIdentityLen = 80

// Identity is a phase 1 identity. The zero value means "none".
type Identity struct {
	Kind IDKind
	Addr netip.Addr // for IDAddress
	Name string     // for IDFQDN, IDUserFQDN and IDDN (DER bytes as a string)
}

// AddressIdentity returns the identity of an address.
func AddressIdentity(a netip.Addr) Identity { return Identity{Kind: IDAddress, Addr: a} }

// ParseIdentity reads an address, user@fqdn or FQDN.
func ParseIdentity(s string) (Identity, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return AddressIdentity(a), nil
	}
	id := Identity{Kind: IDFQDN, Name: s}
	if strings.Contains(s, "@") {
		id.Kind = IDUserFQDN
	}
	return id, id.Validate()
}

// IsZero reports whether id is "none".
func (id Identity) IsZero() bool { return id.Kind == IDNone }

// Validate checks the identity's form.
func (id Identity) Validate() error {
	switch id.Kind {
	case IDNone:
		return nil
	case IDAddress:
		if !id.Addr.IsValid() {
			return errors.New("ike: address identity without an address")
		}
	case IDFQDN, IDUserFQDN:
		if id.Name == "" || len(id.Name) > MaxIdentityLen {
			return fmt.Errorf("ike: identity %q must have 1 to %d characters", id.Name, MaxIdentityLen)
		}
		at := strings.Count(id.Name, "@")
		if (id.Kind == IDUserFQDN) != (at == 1) || at > 1 || strings.HasPrefix(id.Name, "@") || strings.HasSuffix(id.Name, "@") {
			return fmt.Errorf("ike: malformed identity %q", id.Name)
		}
	case IDDN:
		if id.Name == "" {
			return errors.New("ike: empty distinguished name")
		}
	default:
		return fmt.Errorf("ike: unknown identity kind %d", id.Kind)
	}
	return nil
}

// String returns the identity as configured: the address, FQDN or
// user@fqdn.
func (id Identity) String() string {
	switch id.Kind {
	case IDAddress:
		return id.Addr.String()
	case IDNone:
		return "none"
	case IDDN:
		return "dn:" + fmt.Sprintf("%x", id.Name)
	}
	return id.Name
}

// Equal reports whether two identities are the same; FQDNs compare case
// insensitively.
func (id Identity) Equal(o Identity) bool {
	if id.Kind != o.Kind {
		return false
	}
	switch id.Kind {
	case IDAddress:
		return id.Addr == o.Addr
	case IDFQDN, IDUserFQDN:
		return strings.EqualFold(id.Name, o.Name)
	}
	return id.Name == o.Name
}

// Folded returns the identity in the form Equal compares, for a map key:
// an address identity's address, a name's name, FQDNs in lower case.
// Equal identities have the same Folded form when their names are ASCII,
// as FQDNs on the wire are (IDNA).
func (id Identity) Folded() Identity {
	switch id.Kind {
	case IDAddress:
		return Identity{Kind: id.Kind, Addr: id.Addr}
	case IDFQDN, IDUserFQDN:
		return Identity{Kind: id.Kind, Name: strings.ToLower(id.Name)}
	}
	return Identity{Kind: id.Kind, Name: id.Name}
}

// stripUser returns the FQDN part of a user@fqdn identity.
func stripUser(s string) (string, bool) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "", false
	}
	return s[i+1:], true
}

// PSKTable finds pre-shared keys the way JUNOSe does. It is immutable and
// safe for concurrent use.
type PSKTable struct {
	byName map[string]ipsec.Key
}

// NewPSKTable indexes keys by their peer string (addresses in canonical
// form, names case-insensitively).
func NewPSKTable(keys []PreSharedKey) *PSKTable {
	t := &PSKTable{byName: map[string]ipsec.Key{}}
	for _, k := range keys {
		name := k.Peer
		if a, err := netip.ParseAddr(name); err == nil {
			name = a.String()
		}
		t.byName[strings.ToLower(name)] = k.Key.Clone()
	}
	return t
}

// ForIdentity looks the key up by the whole identity string and, for a
// user@fqdn identity not found, a second time by its FQDN part (the seed:
// "the router strips off the user@ part and performs a second search").
// An address identity is looked up by its address.
func (t *PSKTable) ForIdentity(id Identity) (ipsec.Key, bool) {
	if k, ok := t.byName[strings.ToLower(id.String())]; ok {
		return k, true
	}
	if id.Kind == IDUserFQDN {
		if fqdn, ok := stripUser(id.Name); ok {
			k, ok := t.byName[strings.ToLower(fqdn)]
			return k, ok
		}
	}
	return nil, false
}

// ForAddress looks the key up by the peer's address.
func (t *PSKTable) ForAddress(a netip.Addr) (ipsec.Key, bool) {
	k, ok := t.byName[a.Unmap().String()]
	return k, ok
}

// Zero overwrites every key.
func (t *PSKTable) Zero() {
	for _, k := range t.byName {
		k.Zero()
	}
}
