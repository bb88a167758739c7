package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// DHGroup is a Diffie-Hellman group number from the IKE registry: 1 and 2
// (RFC 2409 §6), 5, 14, 15 and 16 (RFC 3526), 19, 20 and 21 (RFC 5903),
// 31 (Curve25519, RFC 8031; IKEv2 only).
type DHGroup uint16

// DHGroups returns the groups ISM supports.
func DHGroups() []DHGroup { return []DHGroup{1, 2, 5, 14, 15, 16, 19, 20, 21, 31} }

// Curve25519 is group 31 (RFC 8031), which only IKEv2 negotiates.
const Curve25519 DHGroup = 31

// MLKEM768 is the IKE key exchange method number of ML-KEM-768 (RFC 9370
// registry): an additional key exchange, never a group.
const MLKEM768 = 36

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
	// AES-GCM with a 16-byte ICV (RFC 5282): IKEv2 only.
	IKEAES128GCM IKEEncryption = "aes128-gcm"
	IKEAES256GCM IKEEncryption = "aes256-gcm"
)

// AEAD reports whether the cipher authenticates too: the rule's hash then
// names no integrity algorithm, only the PRF (when prf is not set).
func (e IKEEncryption) AEAD() bool { return e == IKEAES128GCM || e == IKEAES256GCM }

// IKEHash is the IKE SA hash (PRF and integrity) of a policy rule.
type IKEHash string

// IKE hashes.
const (
	IKEMD5    IKEHash = "md5"
	IKESHA1   IKEHash = "sha1" // configured as "sha" or "sha1"
	IKESHA256 IKEHash = "sha256"
	IKESHA384 IKEHash = "sha384" // IKEv2 only
	IKESHA512 IKEHash = "sha512" // IKEv2 only
)

// AuthMethod is the IKE authentication method of a policy rule.
type AuthMethod string

// Authentication methods.
const (
	PreSharedKeyAuth AuthMethod = "pre-shared-key"
	RSASignatureAuth AuthMethod = "rsa-signature"
	// ECDSASignatureAuth is ECDSA with certificates (RFC 4754, RFC 7427):
	// IKEv2 only.
	ECDSASignatureAuth AuthMethod = "ecdsa-signature"
)

// Signature reports whether the method authenticates with certificates.
func (m AuthMethod) Signature() bool { return m == RSASignatureAuth || m == ECDSASignatureAuth }

// IKEPolicy is an ISAKMP policy rule: one proposal for the IKE SA.
type IKEPolicy struct {
	Priority   int // 1 is tried first
	Encryption IKEEncryption
	// Hash is IKEv1's PRF and integrity algorithm; IKEv2's integrity
	// algorithm (none with AES-GCM) and its PRF when PRF is empty.
	Hash  IKEHash
	Group DHGroup
	// PRF is IKEv2's pseudorandom function, HMAC with this hash; empty is
	// Hash's. IKEv2 only.
	PRF IKEHash
	// AdditionalKE are the additional key exchanges of RFC 9370 (IKEv2
	// only), method numbers in order: MLKEM768 for the post-quantum
	// hybrid. AdditionalKEOptional lets a peer without them set up an
	// IKE SA of Group alone; otherwise they are required.
	AdditionalKE         []int
	AdditionalKEOptional bool
	Authentication       AuthMethod
	Lifetime             time.Duration
	// Pos is where the rule is declared, AuthPos its authentication
	// command (Pos when the rule takes the default): errors found when the
	// certificates are loaded name it.
	Pos, AuthPos Pos
}

// IKEv2Only lists what in the rule only IKEv2 negotiates, as the commands
// say it ("encryption aes128-gcm"); empty when IKEv1 can use the rule.
func (r IKEPolicy) IKEv2Only() []string {
	var out []string
	if r.Encryption.AEAD() {
		out = append(out, "encryption "+string(r.Encryption))
	}
	if r.Hash == IKESHA384 || r.Hash == IKESHA512 {
		out = append(out, "hash "+string(r.Hash))
	}
	if r.PRF != "" {
		out = append(out, "prf")
	}
	if r.Group == Curve25519 {
		out = append(out, "group 31")
	}
	if len(r.AdditionalKE) > 0 {
		out = append(out, "additional-key-exchange")
	}
	if r.Authentication == ECDSASignatureAuth {
		out = append(out, "authentication ecdsa-signature")
	}
	return out
}

// IKEv1Only lists what in the rule only IKEv1 negotiates: DES, which
// cannot protect an IKEv2 SA (RFC 8247 §2.1).
func (r IKEPolicy) IKEv1Only() []string {
	if r.Encryption == IKEDES {
		return []string{"encryption des"}
	}
	return nil
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

// Certificates are the PEM files of signature authentication. Relative
// paths in the file are resolved against the file's directory.
type Certificates struct {
	Local string   // the gateway's certificate
	Key   string   // its private key
	CAs   []string // the trusted CA certificates
	// RSAPSS signs with RSASSA-PSS (RFC 7427, IKEv2 only) instead of
	// PKCS #1 v1.5; an RSA key only.
	RSAPSS bool
	// Pos is where "ipsec local-certificate" is.
	Pos Pos
}
