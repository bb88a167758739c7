package ike

import (
	"crypto"
	"errors"
	"fmt"
	"time"
)

// An IKE policy rule: the algorithms an IKE SA is negotiated with, and the
// checks of which IKE version can use them.

// Encryption is an IKE policy's encryption algorithm.
type Encryption uint8

// Encryption algorithms of IKE policies.
const (
	EncDES Encryption = iota + 1
	Enc3DES
	EncAES128
	EncAES192
	EncAES256
	// AES-GCM with a 16-byte ICV protects the IKE SA itself (RFC 5282):
	// IKEv2 only; the policy's Hash then names no integrity algorithm.
	EncAES128GCM
	EncAES256GCM
)

func (e Encryption) String() string {
	switch e {
	case EncDES:
		return "des"
	case Enc3DES:
		return "3des"
	case EncAES128:
		return "aes128"
	case EncAES192:
		return "aes192"
	case EncAES256:
		return "aes256"
	case EncAES128GCM:
		return "aes128-gcm"
	case EncAES256GCM:
		return "aes256-gcm"
	}
	return fmt.Sprintf("encryption-%d", uint8(e))
}

// AEAD reports whether the algorithm authenticates as well (IKEv2 only).
func (e Encryption) AEAD() bool { return e == EncAES128GCM || e == EncAES256GCM }

// KeyLen returns the key length in bytes (without the AES-GCM salt).
func (e Encryption) KeyLen() int {
	return [...]int{0, 8, 24, 16, 24, 32, 16, 32}[e]
}

// Hash is an IKE policy's hash algorithm. IKEv1 uses its HMAC as the PRF;
// IKEv2 uses its HMAC, truncated as RFC 7296 and RFC 4868 say, as the
// integrity algorithm, and as the PRF when the policy names none.
type Hash uint8

// Hash algorithms of IKE policies. SHA-384 and SHA-512 are IKEv2 only.
const (
	HashMD5 Hash = iota + 1
	HashSHA1
	HashSHA256
	HashSHA384
	HashSHA512
)

// Crypto returns the standard library hash.
func (h Hash) Crypto() crypto.Hash {
	switch h {
	case HashMD5:
		return crypto.MD5
	case HashSHA1:
		return crypto.SHA1
	case HashSHA256:
		return crypto.SHA256
	case HashSHA384:
		return crypto.SHA384
	case HashSHA512:
		return crypto.SHA512
	}
	return 0
}

func (h Hash) String() string {
	switch h {
	case HashMD5:
		return "md5"
	case HashSHA1:
		return "sha"
	case HashSHA256:
		return "sha256"
	case HashSHA384:
		return "sha384"
	case HashSHA512:
		return "sha512"
	}
	return fmt.Sprintf("hash-%d", uint8(h))
}

// Policy is an IKE policy rule.
type Policy struct {
	Encryption Encryption
	// Hash is the IKEv1 hash; for IKEv2 the integrity algorithm (ignored
	// with an AEAD Encryption) and the PRF when PRF is zero.
	Hash Hash
	Auth AuthMethod
	// PRF is the IKEv2 pseudorandom function, HMAC with this hash; zero
	// means Hash's. IKEv1 refuses a policy that sets it. (The small fields
	// together: every IKE SA holds a Policy, TestPolicySize.)
	PRF Hash
	// AdditionalKEOptional also proposes NONE for each additional key
	// exchange (RFC 9370 §2.2.1), so that a peer without them (one that
	// does not know RFC 9370, or whose policy has none) gets an IKE SA of
	// Group alone, with no error. False: they are required, and such a
	// peer gets NO_PROPOSAL_CHOSEN.
	AdditionalKEOptional bool
	Group                int           // DH group
	Lifetime             time.Duration // zero: DefaultIKELifetime
	// AdditionalKE are the IKEv2 additional key exchanges of RFC 9370, in
	// order: key exchange method numbers (LookupMethod; MLKEM768 for a
	// post-quantum hybrid with Group), at most MaxAdditionalKE, each
	// proposed as Additional Key Exchange 1, 2, ... and performed in
	// IKE_INTERMEDIATE exchanges (RFC 9242) after IKE_SA_INIT and in
	// IKE_FOLLOWUP_KE exchanges after a rekey's CREATE_CHILD_SA. IKEv1
	// refuses a policy that sets it.
	AdditionalKE []int
}

// MaxAdditionalKE is the number of Additional Key Exchange transform
// types, 6 to 12 (RFC 9370 §2.2.1).
const MaxAdditionalKE = 7

func (p Policy) String() string {
	s := fmt.Sprintf("%v-%v-%v-group%d", p.Encryption, p.Hash, p.Auth, p.Group)
	if p.PRF != 0 {
		s = fmt.Sprintf("%v-%v-prf%v-%v-group%d", p.Encryption, p.Hash, p.PRF, p.Auth, p.Group)
	}
	for i, m := range p.AdditionalKE {
		s += fmt.Sprintf("-ke%d_%d", i+1, m)
	}
	if len(p.AdditionalKE) > 0 && p.AdditionalKEOptional {
		s += "-optional"
	}
	return s
}

// ValidFor reports whether IKE version 1 or 2 can negotiate the policy:
// its algorithms and its authentication method (ECDSA signatures are
// IKEv2 only). A daemon that runs both versions gives each the policies
// it can use.
func (p Policy) ValidFor(version int) error {
	if err := p.validate(version); err != nil {
		return err
	}
	if p.Auth == AuthECDSASig && version == 1 {
		return errors.New("ecdsa-sig needs IKEv2")
	}
	return nil
}

// validate checks a policy's algorithms for an IKE version.
func (p Policy) validate(version int) error {
	if _, ok := LookupGroup(p.Group); !ok || (version == 1 && p.Group == 31) {
		return fmt.Errorf("unsupported DH group %d", p.Group)
	}
	if version == 1 {
		if p.Encryption < EncDES || p.Encryption > EncAES256 || p.Hash < HashMD5 || p.Hash > HashSHA256 || p.PRF != 0 {
			return errors.New("unsupported algorithms")
		}
		if len(p.AdditionalKE) > 0 {
			return errors.New("additional key exchanges (RFC 9370) need IKEv2")
		}
		return nil
	}
	if err := p.validateAdditionalKE(); err != nil {
		return err
	}
	switch {
	case p.Encryption < Enc3DES || p.Encryption > EncAES256GCM:
		return fmt.Errorf("encryption %v cannot protect an IKEv2 SA", p.Encryption)
	case p.PRF > HashSHA512 || p.Hash > HashSHA512:
		return errors.New("unsupported hash")
	case p.PRF == 0 && p.Hash == 0:
		return errors.New("neither a PRF nor a hash")
	case !p.Encryption.AEAD() && p.Hash == 0:
		return fmt.Errorf("%v needs an integrity hash", p.Encryption)
	}
	return nil
}
