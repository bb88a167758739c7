package ike

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/driver"
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
	// Certificates is the local certificate, key and trusted CAs for RSA
	// signature authentication; nil when no policy uses it.
	Certificates *Certificates
	// Tunnels are the signaled tunnels.
	Tunnels []Tunnel
	// Lifetime is the global user-SA lifetime (the ipsec lifetime command);
	// a tunnel's own lifetime overrides it. Zero: DefaultLifetime.
	Lifetime Lifetime
	// Retransmit governs resending unanswered messages. Zero: defaults.
	Retransmit Retransmit
	// Keepalive is the NAT-T keepalive interval (RFC 3948 §2.3) when this
	// end is behind a NAT. Zero: 20 s.
	Keepalive time.Duration
	// DPD is the global dead peer detection setting (the ipsec dpd
	// commands); a tunnel's own overrides it.
	DPD DPD
	// FailoverHoldDown is the least time between two failovers of a
	// tunnel. Zero: DefaultFailoverHoldDown; negative: none.
	FailoverHoldDown time.Duration

	// Rand is the source of cookies, nonces, SPIs-independent randomness
	// and DH keys; nil means crypto/rand.
	Rand io.Reader
	// Clock runs every timer of the daemon (retransmissions, lifetimes
	// and rekeys, DPD, failover hold-downs, NAT-T keepalives); nil means
	// clock.Real.
	Clock clock.Clock
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
}

// MaxPolicies is the number of IKE policy rules JUNOSe allows.
const MaxPolicies = 10

// DefaultLifetime is the global user-SA lifetime when none is configured.
var DefaultLifetime = Lifetime{Time: 8 * time.Hour}

// DefaultIKELifetime is an IKE policy's lifetime when it has none.
const DefaultIKELifetime = 24 * time.Hour

// Retransmit is a retransmission schedule: the first resend after Timeout,
// each next one Base times later but never more than Cap after the one
// before (zero: no cap), at most Tries resends.
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
	}
	return fmt.Sprintf("encryption-%d", uint8(e))
}

// KeyLen returns the key length in bytes.
func (e Encryption) KeyLen() int {
	return [...]int{0, 8, 24, 16, 24, 32}[e]
}

// Hash is an IKE policy's hash algorithm (used as HMAC for the PRF).
type Hash uint8

// Hash algorithms of IKE policies.
const (
	HashMD5 Hash = iota + 1
	HashSHA1
	HashSHA256
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
	}
	return fmt.Sprintf("hash-%d", uint8(h))
}

// AuthMethod is an IKE policy's authentication method.
type AuthMethod uint8

// Authentication methods.
const (
	AuthPSK    AuthMethod = iota + 1 // pre-shared keys
	AuthRSASig                       // RSA signatures with X.509 certificates
)

func (a AuthMethod) String() string {
	switch a {
	case AuthPSK:
		return "pre-share"
	case AuthRSASig:
		return "rsa-sig"
	}
	return fmt.Sprintf("auth-%d", uint8(a))
}

// Policy is an IKE policy rule.
type Policy struct {
	Encryption Encryption
	Hash       Hash
	Auth       AuthMethod
	Group      int           // DH group
	Lifetime   time.Duration // zero: DefaultIKELifetime
}

func (p Policy) String() string {
	return fmt.Sprintf("%v-%v-%v-group%d", p.Encryption, p.Hash, p.Auth, p.Group)
}

// PreSharedKey is a key for a peer named by its address or its identity
// (an FQDN or user@fqdn string).
type PreSharedKey struct {
	Peer string
	Key  driver.Key
}

// Certificates holds what RSA signature authentication needs.
type Certificates struct {
	Chain []*x509.Certificate // the local certificate first
	Key   crypto.Signer       // its RSA private key
	// CAs are trusted for the peers' certificates; their subjects go in
	// the certificate requests this end sends.
	CAs []*x509.Certificate
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
	Lifetime Lifetime
	// LocalSelector and RemoteSelector are the traffic selectors (IDci and
	// IDcr when ISM initiates).
	LocalSelector, RemoteSelector selector.Selector
	// UDPEncap forces ESP-in-UDP (RFC 3948) even without a NAT, as
	// strongSwan's encap option does.
	UDPEncap bool
	// BackupDestination is the failover destination; invalid when none.
	// When DPD declares the destination in use dead, or phase 1 with it
	// fails, the tunnel switches to the other one and negotiates there
	// (two-way: from the backup it goes back to Destination).
	BackupDestination netip.Addr
	// DPD is the tunnel's dead peer detection; nil uses Config.DPD.
	DPD *DPD
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

// Validate checks the configuration and returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Policies) == 0 {
		errs = append(errs, errors.New("ike: no IKE policy"))
	}
	if len(c.Policies) > MaxPolicies {
		errs = append(errs, fmt.Errorf("ike: %d IKE policies, at most %d", len(c.Policies), MaxPolicies))
	}
	for i, p := range c.Policies {
		if p.Encryption < EncDES || p.Encryption > EncAES256 || p.Hash < HashMD5 || p.Hash > HashSHA256 {
			errs = append(errs, fmt.Errorf("ike: policy %d: unsupported algorithms", i+1))
		}
		if _, ok := LookupGroup(p.Group); !ok {
			errs = append(errs, fmt.Errorf("ike: policy %d: unsupported DH group %d", i+1, p.Group))
		}
		switch p.Auth {
		case AuthPSK:
		case AuthRSASig:
			if c.Certificates == nil || len(c.Certificates.Chain) == 0 || c.Certificates.Key == nil {
				errs = append(errs, fmt.Errorf("ike: policy %d: rsa-sig without a certificate and key", i+1))
			}
		default:
			errs = append(errs, fmt.Errorf("ike: policy %d: unsupported authentication", i+1))
		}
	}
	if err := c.DPD.validate(); err != nil {
		errs = append(errs, fmt.Errorf("ike: %w", err))
	}
	names := map[string]bool{}
	for _, t := range c.Tunnels {
		errs = append(errs, t.validate(names)...)
	}
	return errors.Join(errs...)
}

func (t *Tunnel) validate(names map[string]bool) []error {
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
		if !tr.Valid() || tr.Cipher == transform.CipherChaCha20Poly1305 {
			bad("transform %v cannot be negotiated with IKEv1", tr)
		}
	}
	if _, ok := LookupGroup(t.PFSGroup); t.PFSGroup != 0 && !ok {
		bad("unsupported PFS group %d", t.PFSGroup)
	}
	if !t.LocalSelector.Valid() || !t.RemoteSelector.Valid() {
		bad("invalid selectors")
	}
	if t.DPD != nil {
		if err := t.DPD.validate(); err != nil {
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
