package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// DHGroup is a Diffie-Hellman group number from the IKE registry: 1 and 2
// (RFC 2409 §6), 5, 14, 15 and 16 (RFC 3526), 19, 20 and 21 (RFC 5903).
type DHGroup uint16

// DHGroups returns the groups ISM supports.
func DHGroups() []DHGroup { return []DHGroup{1, 2, 5, 14, 15, 16, 19, 20, 21} }

// Valid reports whether g is one of DHGroups.
func (g DHGroup) Valid() bool {
	for _, v := range DHGroups() {
		if g == v {
			return true
		}
	}
	return false
}

func (g DHGroup) String() string {
	if g == 0 {
		return "none"
	}
	return fmt.Sprintf("group %d", uint16(g))
}

// IKEEncryption is the IKE SA cipher of a policy rule.
type IKEEncryption string

// IKE ciphers.
const (
	IKEDES    IKEEncryption = "des"
	IKE3DES   IKEEncryption = "3des"
	IKEAES128 IKEEncryption = "aes128"
	IKEAES192 IKEEncryption = "aes192"
	IKEAES256 IKEEncryption = "aes256"
)

// IKEHash is the IKE SA hash (PRF and integrity) of a policy rule.
type IKEHash string

// IKE hashes.
const (
	IKEMD5    IKEHash = "md5"
	IKESHA1   IKEHash = "sha1" // configured as "sha" or "sha1"
	IKESHA256 IKEHash = "sha256"
)

// AuthMethod is the IKE authentication method of a policy rule.
type AuthMethod string

// Authentication methods.
const (
	PreSharedKeyAuth AuthMethod = "pre-shared-key"
	RSASignatureAuth AuthMethod = "rsa-signature"
)

// IKEPolicy is an ISAKMP policy rule: one proposal for the IKE SA.
type IKEPolicy struct {
	Priority       int // 1 is tried first
	Encryption     IKEEncryption
	Hash           IKEHash
	Group          DHGroup
	Authentication AuthMethod
	Lifetime       time.Duration
}

// DefaultIKEPolicy returns the rule used when the file has none; its fields
// are also the defaults of every rule.
func DefaultIKEPolicy() IKEPolicy {
	return IKEPolicy{
		Priority:       1,
		Encryption:     IKE3DES,
		Hash:           IKESHA1,
		Group:          2,
		Authentication: PreSharedKeyAuth,
		Lifetime:       28800 * time.Second,
	}
}

// PreSharedKey is an IKE pre-shared key, found by the peer's address or by
// its identity (an FQDN or user@fqdn). Exactly one of Addr and Identity is
// set.
type PreSharedKey struct {
	Addr     netip.Addr
	Identity Identity
	Key      ipsec.Key
}

// LogValue logs whom the key is for, never the key.
func (k PreSharedKey) LogValue() slog.Value {
	if k.Addr.IsValid() {
		return slog.GroupValue(slog.String("address", k.Addr.String()))
	}
	return slog.GroupValue(slog.String("identity", k.Identity.Value))
}

// Certificates are the PEM files of rsa-signature authentication. Relative
// paths in the file are resolved against the file's directory.
type Certificates struct {
	Local string   // the gateway's certificate
	Key   string   // its private key
	CAs   []string // the trusted CA certificates
}
