package config

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// Tunnel is a secure IP interface and the secure tunnel under it
// ("interface tunnel ipsec:NAME"), with every setting resolved: defaults and
// global values are filled in.
//
// Tunnels are not modified after Parse; Zero is the exception. Use Equal to
// compare them.
type Tunnel struct {
	Name string // without the "ipsec:" prefix
	Pos  Pos    // where "interface tunnel" is

	Description   string
	OperationalVR VR
	TransportVR   VR
	// Address and Address6 are the interface's IPv4 and IPv6 addresses
	// with their prefix lengths; invalid when not configured.
	Address  netip.Prefix
	Address6 netip.Prefix

	// The small fields together, so that the struct fits 704 bytes
	// (TestTunnelSize): a signaled tunnel's configuration is held for
	// every tunnel, thousands of them.
	Type    TunnelType
	Mode    ipsec.Mode
	IKEMode IKEMode
	ESN     bool
	// PFSGroup is the PFS Diffie-Hellman group; 0 is no PFS.
	PFSGroup DHGroup
	// UDPEncapPort is the port of ESP in UDP (RFC 3948); 0 is plain ESP.
	UDPEncapPort uint16
	sourceLine   int32 // line of "tunnel source", for CheckHost
	// MTU is the interface MTU, 68 to 65535; 0 lets the daemon choose.
	MTU int32

	TunnelSource      netip.Addr
	TunnelDestination Endpoint
	// BackupDestination is the failover destination; zero when none.
	BackupDestination Endpoint

	TransformSet   TransformSet
	LocalSelector  selector.Selector
	RemoteSelector selector.Selector

	// Inbound and Outbound are the manual SAs; nil on signaled tunnels.
	Inbound  *SA
	Outbound *SA

	// Lifetime is the user SA lifetime; zero on manual tunnels.
	Lifetime ipsec.Lifetime
	// LocalIdentity and RemoteIdentity are the IKE identities; by default
	// the tunnel source address and the tunnel destination. Zero on manual
	// tunnels.
	LocalIdentity  Identity
	RemoteIdentity Identity
	IKEVersion     int // 1 or 2; 0 on manual tunnels
	// DPD is off on manual tunnels.
	DPD              ipsec.DPD
	FailoverHoldDown time.Duration

	Driver       Driver
	ReplayWindow int
}

// TunnelType says how a tunnel gets its SAs.
type TunnelType uint8

// Tunnel types.
const (
	Signaled TunnelType = iota // SAs negotiated by IKE on demand
	Manual                     // SAs configured with "tunnel sa"
)

func (t TunnelType) String() string {
	if t == Manual {
		return "manual"
	}
	return "signaled"
}

// IKEMode is the IKEv1 phase 1 exchange.
type IKEMode uint8

// IKE phase 1 modes.
const (
	MainMode       IKEMode = iota // identity protection (RFC 2409 §5)
	AggressiveMode                // RFC 2409 §5, identities in the clear
)

func (m IKEMode) String() string {
	if m == AggressiveMode {
		return "aggressive"
	}
	return "main"
}

// Endpoint is a tunnel destination: an address, or on signaled tunnels an
// FQDN. The zero value is no endpoint.
type Endpoint struct {
	Addr netip.Addr
	FQDN string
}

// IsZero reports whether e is unset.
func (e Endpoint) IsZero() bool { return !e.Addr.IsValid() && e.FQDN == "" }

// IsFQDN reports whether e is a name.
func (e Endpoint) IsFQDN() bool { return e.FQDN != "" }

// String returns the address or the name.
func (e Endpoint) String() string {
	if e.FQDN != "" {
		return e.FQDN
	}
	if e.Addr.IsValid() {
		return e.Addr.String()
	}
	return ""
}

// IdentityKind is the type of an IKE identity.
type IdentityKind uint8

// Identity kinds, after the ID types of RFC 2407 §4.6.2.1.
const (
	IdentityNone     IdentityKind = iota
	IdentityAddress               // ID_IPV4_ADDR, ID_IPV6_ADDR
	IdentityFQDN                  // ID_FQDN
	IdentityUserFQDN              // ID_USER_FQDN, user@fqdn
)

func (k IdentityKind) String() string {
	return [...]string{"none", "address", "fqdn", "user-fqdn"}[k]
}

// Identity is an IKE identity.
type Identity struct {
	Kind  IdentityKind
	Value string     // the name, or the address in text
	Addr  netip.Addr // for IdentityAddress
}

// String returns the identity as configured.
func (id Identity) String() string { return id.Value }

// SA is a manually keyed user SA. Its keys print as "[redacted]".
type SA struct {
	Direction ipsec.Direction
	Protocol  transform.Protocol
	SPI       uint32
	Transform transform.Transform
	// Destination is the SA's destination address: the tunnel destination
	// for the outbound SA, the tunnel source for the inbound one.
	Destination netip.Addr
	CipherKey   ipsec.Key // nil when the transform has no cipher key
	AuthKey     ipsec.Key // nil when the transform has no integrity key

	keyDigest [32]byte // digest of the keys, for Tunnel.Equal
}

// TransformSet is a named list of transforms in priority order.
type TransformSet struct {
	Name       string
	Transforms []transform.Transform
}

// Protocol returns the protocol of the set's transforms (a set holds one).
func (s TransformSet) Protocol() transform.Protocol {
	if len(s.Transforms) == 0 {
		return 0
	}
	return s.Transforms[0].Protocol
}

// String returns "ipsec:NAME".
func (t *Tunnel) String() string { return "ipsec:" + t.Name }

// LogValue logs the tunnel's name, type and endpoints, never its keys.
func (t Tunnel) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", t.String()),
		slog.String("type", t.Type.String()),
		slog.String("source", t.TunnelSource.String()),
		slog.String("destination", t.TunnelDestination.String()),
	)
}

// Zero overwrites the tunnel's manual SA keys.
func (t *Tunnel) Zero() {
	for _, sa := range []*SA{t.Inbound, t.Outbound} {
		if sa != nil {
			sa.CipherKey.Zero()
			sa.AuthKey.Zero()
		}
	}
}

// Equal reports whether t and u configure the same tunnel: every setting
// equal, where it was declared aside. Keys compare by the digest Parse took
// of each manual SA's, so Equal works after Zero.
func (t *Tunnel) Equal(u *Tunnel) bool {
	if t == nil || u == nil {
		return t == u
	}
	return reflect.DeepEqual(t.comparable(), u.comparable())
}

// comparable returns a copy without positions and key bytes.
func (t *Tunnel) comparable() Tunnel {
	c := *t
	c.Pos, c.sourceLine = Pos{}, 0
	for _, p := range []**SA{&c.Inbound, &c.Outbound} {
		if *p != nil {
			sa := **p
			sa.CipherKey, sa.AuthKey = nil, nil
			*p = &sa
		}
	}
	return c
}

// digestSalt keeps key digests from being compared across processes.
var digestSalt = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}()

// digestKeys returns a salted SHA-256 of an SA's keys.
func digestKeys(sa *SA) [32]byte {
	h := sha256.New()
	h.Write(digestSalt)
	for _, k := range []ipsec.Key{sa.CipherKey, sa.AuthKey} {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(k))))
		h.Write(k)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// LogValue logs the SA's identity and transform, never its keys.
func (sa SA) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("dir", sa.Direction.String()),
		slog.String("spi", fmt.Sprintf("0x%08x", sa.SPI)),
		slog.String("protocol", sa.Protocol.String()),
		slog.String("transform", sa.Transform.String()),
		slog.String("destination", sa.Destination.String()),
	)
}
