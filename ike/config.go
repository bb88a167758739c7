package ike

import (
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
	// Backoff puts off the next negotiation of a tunnel's selector pair
	// after failed ones (acquires and rekeys). Zero: DefaultBackoff.
	Backoff Backoff
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
	// Mode is the phase 1 exchange (IKEv1). The small fields sit
	// together: a daemon holds a Tunnel for every tunnel, thousands of
	// them (TestTunnelSize).
	Mode Phase1Mode
	// UDPEncap forces ESP-in-UDP (RFC 3948) even without a NAT, as
	// strongSwan's encap option does.
	UDPEncap bool
	// SAMode is the IPsec mode of the tunnel's SAs: tunnel (the zero
	// value) or transport (IKEv2's USE_TRANSPORT_MODE, RFC 7296 §1.3.1).
	SAMode ipsec.Mode
	// ESN proposes 64-bit extended sequence numbers first (RFC 4303
	// §2.2.1); IKEv2 only.
	ESN bool
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
	if err := c.Backoff.Validate(); err != nil {
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
