package ike

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// Config is what the IKE daemon runs with: IKE policy rules, credentials
// and the signaled tunnels. A Config is read by the daemon when it starts
// and on Reconfigure; the daemon keeps its own copy.
type Config struct {
	// Policies are the IKE (phase 1) policy rules in priority order; at
	// most MaxPolicies, as in JUNOSe.
	Policies []Policy
	// PreSharedKeys are looked up by the peer's address or identity.
	PreSharedKeys []PreSharedKey
	// Certificates is the local certificate, key and trusted CAs for
	// signature authentication (rsa-sig, ecdsa-sig); nil when no policy
	// uses it.
	Certificates *Certificates
	// Tunnels are the signaled tunnels.
	Tunnels []Tunnel
	// Lifetime is the global user-SA lifetime (the ipsec lifetime command);
	// a tunnel's own lifetime overrides it. Zero: DefaultLifetime.
	Lifetime ipsec.Lifetime
	// Retransmit governs resending unanswered messages. Zero: defaults.
	Retransmit Retransmit
	// Keepalive is the NAT-T keepalive interval (RFC 3948 §2.3) when this
	// end is behind a NAT. Zero: 20 s.
	Keepalive time.Duration
	// DPD is the global dead peer detection setting (the ipsec dpd
	// commands); a tunnel's own overrides it.
	DPD ipsec.DPD
	// FailoverHoldDown is the least time between two failovers of a
	// tunnel. Zero: DefaultFailoverHoldDown; negative: none.
	FailoverHoldDown time.Duration
	// FragmentMTU is the largest IP datagram an IKEv2 message fragment
	// may fill (RFC 7383 §2.5.1), headers included. Zero: 576 bytes over
	// IPv4 and 1280 over IPv6, the sizes every path carries; negative:
	// IKEv2 fragmentation is neither announced nor used. A fragmented
	// request that goes unanswered is sent again in smaller fragments,
	// down to those sizes (§2.5.2).
	FragmentMTU int
	// CookieThreshold is, for IKEv2, the number of half-open IKE SAs
	// (answered IKE_SA_INIT, no IKE_AUTH yet) from which on IKE_SA_INIT
	// requests without a valid cookie are answered with a COOKIE and no
	// state is kept (RFC 7296 §2.6). nil: DefaultCookieThreshold; 0:
	// always.
	CookieThreshold *int

	// Rand is the source of cookies, nonces, SPIs-independent randomness
	// and DH keys; nil means crypto/rand.
	Rand io.Reader
	// Clock runs every timer of the daemon (retransmissions, lifetimes
	// and rekeys, DPD, failover hold-downs, NAT-T keepalives); nil means
	// clock.Real.
	Clock clock.Clock
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
	// KeyLog, when set, receives the keys of each IKE SA the daemon sets
	// up (IKEv2), for a protocol analyser to decrypt its messages, as
	// crypto/tls's KeyLogWriter serves Wireshark: it discloses the SAs and
	// is for tests and debugging only. Nil, the default, logs nothing.
	KeyLog func(IKESAKeys)
}

// IKESAKeys are an IKE SA's SPIs, negotiated algorithms and the keys that
// protect its messages (SK_ei, SK_er, SK_ai, SK_ar, RFC 7296 §2.14; an
// AES-GCM key with its 4-byte salt): the row of Wireshark's IKEv2
// decryption table. Config.KeyLog gets copies.
type IKESAKeys struct {
	SPIi, SPIr     uint64
	Policy         Policy
	EI, ER, AI, AR []byte
}

// MaxPolicies is the number of IKE policy rules JUNOSe allows.
const MaxPolicies = 10

// MinFragmentMTU is the smallest Config.FragmentMTU: below it an IKE
// fragment would carry almost nothing but headers.
const MinFragmentMTU = 256

// DefaultLifetime is the global user-SA lifetime when none is configured.
var DefaultLifetime = ipsec.Lifetime{Time: 8 * time.Hour}

// DefaultCookieThreshold is Config.CookieThreshold's default, as
// strongSwan's charon had it (cookie_threshold = 10 until 5.5).
const DefaultCookieThreshold = 10

// CookieLimit returns the configured cookie threshold or its default.
func (c *Config) CookieLimit() int {
	if c.CookieThreshold == nil {
		return DefaultCookieThreshold
	}
	return *c.CookieThreshold
}

// DefaultIKELifetime is an IKE policy's lifetime when it has none.
const DefaultIKELifetime = 24 * time.Hour

// Retransmit is a retransmission schedule: the first resend after Timeout,
// each next one Base times later but never more than Cap after the one
// before (zero: no cap), at most Tries resends (zero: the default of 5;
// negative: none), the request given up one more wait later.
type Retransmit struct {
	Timeout time.Duration
	Base    float64
	Tries   int
	Cap     time.Duration
}

// Next returns the wait after one of timeout: Base times longer, at most
// Cap.
func (r Retransmit) Next(timeout time.Duration) time.Duration {
	next := time.Duration(float64(timeout) * r.Base)
	if r.Cap > 0 && next > r.Cap {
		next = r.Cap
	}
	return next
}

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
	Hash     Hash
	Auth     AuthMethod
	Group    int           // DH group
	Lifetime time.Duration // zero: DefaultIKELifetime
	// PRF is the IKEv2 pseudorandom function, HMAC with this hash; zero
	// means Hash's. IKEv1 refuses a policy that sets it.
	PRF Hash
	// AdditionalKE are the IKEv2 additional key exchanges of RFC 9370, in
	// order: key exchange method numbers (LookupMethod; MLKEM768 for a
	// post-quantum hybrid with Group), at most MaxAdditionalKE, each
	// proposed as Additional Key Exchange 1, 2, ... and performed in
	// IKE_INTERMEDIATE exchanges (RFC 9242) after IKE_SA_INIT and in
	// IKE_FOLLOWUP_KE exchanges after a rekey's CREATE_CHILD_SA. IKEv1
	// refuses a policy that sets it.
	AdditionalKE []int
	// AdditionalKEOptional also proposes NONE for each additional key
	// exchange (RFC 9370 §2.2.1), so that a peer without them (one that
	// does not know RFC 9370, or whose policy has none) gets an IKE SA of
	// Group alone, with no error. False: they are required, and such a
	// peer gets NO_PROPOSAL_CHOSEN.
	AdditionalKEOptional bool
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

// PreSharedKey is a key for a peer named by its address or its identity
// (an FQDN or user@fqdn string).
type PreSharedKey struct {
	Peer string
	Key  ipsec.Key
}

// Phase1Mode is the phase 1 exchange a tunnel initiates with.
type Phase1Mode uint8

// Phase 1 modes.
const (
	MainMode Phase1Mode = iota
	AggressiveMode
)

func (m Phase1Mode) String() string {
	if m == AggressiveMode {
		return "aggressive"
	}
	return "main"
}

// Tunnel is a signaled tunnel as IKE sees it.
type Tunnel struct {
	Name string
	// Version is the IKE version the tunnel negotiates with: 0 or 1 for
	// IKEv1, 2 for IKEv2. A daemon of one version (v1.New, v2.New) runs
	// whatever tunnels it is given; ike/mux gives each its own.
	Version int
	// Source is the local endpoint (the tunnel source).
	Source netip.Addr
	// Destination is the peer's address; invalid when the destination is
	// known only by its identity (an FQDN), in which case the tunnel
	// accepts a peer at any address that authenticates as RemoteID and
	// never initiates before it has learned one.
	Destination netip.Addr
	// LocalID and RemoteID are the phase 1 identities; zero means the
	// Source and Destination addresses.
	LocalID, RemoteID Identity
	Mode              Phase1Mode
	// TransformSet is proposed in order as initiator and matched in order
	// as responder.
	TransformSet []transform.Transform
	// PFSGroup is the quick mode DH group; 0 disables PFS.
	PFSGroup int
	// Lifetime is the tunnel lifetime; zero uses Config.Lifetime.
	Lifetime ipsec.Lifetime
	// LocalSelector and RemoteSelector are the traffic selectors (IDci and
	// IDcr when ISM initiates).
	LocalSelector, RemoteSelector selector.Selector
	// UDPEncap forces ESP-in-UDP (RFC 3948) even without a NAT, as
	// strongSwan's encap option does.
	UDPEncap bool
	// SAMode is the IPsec mode of the tunnel's SAs: tunnel (the zero
	// value) or transport (IKEv2's USE_TRANSPORT_MODE, RFC 7296 §1.3.1).
	SAMode ipsec.Mode
	// ESN proposes 64-bit extended sequence numbers first (RFC 4303
	// §2.2.1); IKEv2 only.
	ESN bool
	// BackupDestination is the failover destination; invalid when none.
	// When DPD declares the destination in use dead, or phase 1 with it
	// fails, the tunnel switches to the other one and negotiates there
	// (two-way: from the backup it goes back to Destination).
	BackupDestination netip.Addr
	// DPD is the tunnel's dead peer detection; nil uses Config.DPD.
	DPD *ipsec.DPD
	// FailoverHoldDown is the least time between two failovers. Zero:
	// Config.FailoverHoldDown; negative: none.
	FailoverHoldDown time.Duration
}

// LocalIdentity returns the identity this end presents.
func (t *Tunnel) LocalIdentity() Identity {
	if t.LocalID.IsZero() {
		return AddressIdentity(t.Source)
	}
	return t.LocalID
}

// RemoteIdentity returns the identity the peer must present.
func (t *Tunnel) RemoteIdentity() Identity {
	if t.RemoteID.IsZero() {
		return AddressIdentity(t.Destination)
	}
	return t.RemoteID
}

// Validate checks the configuration for the IKEv1 daemon and returns every
// problem at once.
func (c *Config) Validate() error { return c.validate(1) }

// ValidateV2 checks the configuration for the IKEv2 daemon: policies may
// use AES-GCM, SHA-384/512, a separate PRF, group 31 and ECDSA
// signatures; tunnels may use transport mode, ESN and ChaCha20-Poly1305.
// DES is refused.
func (c *Config) ValidateV2() error { return c.validate(2) }

func (c *Config) validate(version int) error {
	var errs []error
	if len(c.Policies) == 0 {
		errs = append(errs, errors.New("ike: no IKE policy"))
	}
	if len(c.Policies) > MaxPolicies {
		errs = append(errs, fmt.Errorf("ike: %d IKE policies, at most %d", len(c.Policies), MaxPolicies))
	}
	for i, p := range c.Policies {
		if err := p.validate(version); err != nil {
			errs = append(errs, fmt.Errorf("ike: policy %d: %w", i+1, err))
		}
		switch {
		case p.Auth == AuthPSK:
		case p.Auth == AuthECDSASig && version == 1:
			errs = append(errs, fmt.Errorf("ike: policy %d: ecdsa-sig needs IKEv2", i+1))
		case p.Auth.Certificate():
			if err := c.Certificates.check(p.Auth, version); err != nil {
				errs = append(errs, fmt.Errorf("ike: policy %d: %w", i+1, err))
			}
		default:
			errs = append(errs, fmt.Errorf("ike: policy %d: unsupported authentication", i+1))
		}
	}
	if c.FragmentMTU > 0 && (c.FragmentMTU < MinFragmentMTU || c.FragmentMTU > 65535) {
		errs = append(errs, fmt.Errorf("ike: fragment MTU %d: from %d to 65535 bytes", c.FragmentMTU, MinFragmentMTU))
	}
	if err := c.DPD.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("ike: %w", err))
	}
	if c.CookieLimit() < 0 {
		errs = append(errs, fmt.Errorf("ike: negative cookie threshold %d", c.CookieLimit()))
	}
	names := map[string]bool{}
	for _, t := range c.Tunnels {
		errs = append(errs, t.validate(names, version)...)
	}
	return errors.Join(errs...)
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

func (t *Tunnel) validate(names map[string]bool, version int) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("ike: tunnel %q: "+format, append([]any{t.Name}, args...)...))
	}
	if t.Name == "" {
		errs = append(errs, errors.New("ike: tunnel without a name"))
	}
	if names[t.Name] {
		bad("defined twice")
	}
	names[t.Name] = true
	if !t.Source.IsValid() {
		bad("no source address")
	}
	if !t.Destination.IsValid() && t.RemoteID.Kind != IDFQDN && t.RemoteID.Kind != IDUserFQDN {
		bad("neither a destination address nor an FQDN identity")
	}
	for _, id := range []Identity{t.LocalID, t.RemoteID} {
		if err := id.Validate(); err != nil {
			bad("%v", err)
		}
	}
	if len(t.TransformSet) == 0 {
		bad("empty transform set")
	}
	for _, tr := range t.TransformSet {
		if !tr.Valid() || (version == 1 && tr.Cipher == transform.CipherChaCha20Poly1305) {
			bad("transform %v cannot be negotiated with IKEv%d", tr, version)
		}
	}
	if version == 1 && (t.SAMode != ipsec.Tunnel || t.ESN) {
		bad("transport mode and extended sequence numbers need IKEv2")
	}
	if _, ok := LookupGroup(t.PFSGroup); t.PFSGroup != 0 && (!ok || (version == 1 && t.PFSGroup == 31)) {
		bad("unsupported PFS group %d", t.PFSGroup)
	}
	if !t.LocalSelector.Valid() || !t.RemoteSelector.Valid() {
		bad("invalid selectors")
	}
	if t.DPD != nil {
		if err := t.DPD.Validate(); err != nil {
			bad("%v", err)
		}
	}
	if b := t.BackupDestination; b.IsValid() {
		switch {
		case !t.Destination.IsValid():
			bad("a backup destination needs a destination address")
		case b == t.Destination:
			bad("the backup destination %v is the destination itself", b)
		case t.Source.IsValid() && b.Is4() != t.Source.Is4():
			bad("backup destination %v and source %v are of different families", b, t.Source)
		}
	}
	return errs
}
