package config

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// Defaults of the global settings (docs/config.md).
const (
	// DefaultLifetimeSeconds and DefaultLifetimeKilobytes are the user SA
	// lifetime when neither the tunnel nor "ipsec lifetime" sets one: 8 hours
	// and 100 MB, as in JUNOSe.
	DefaultLifetimeSeconds   = 28800
	DefaultLifetimeKilobytes = 102400
	// DefaultReplayWindow is the anti-replay window in packets.
	DefaultReplayWindow = 1024
	// MaxReplayWindow is the largest anti-replay window.
	MaxReplayWindow = 65536
	// DefaultUDPEncapPort is the UDP port of ESP in UDP (RFC 3948 §1).
	DefaultUDPEncapPort = 4500
	// DefaultControlSocket is the path of ismd's control socket.
	DefaultControlSocket = "/run/ism/ismd.sock"
	// DefaultVR is the name of the virtual router of the daemon's own
	// network namespace.
	DefaultVR = "default"
	// MaxIKEPolicies is the number of ISAKMP policy rules JUNOSe allows.
	MaxIKEPolicies = 10
	// MaxIdentityLen is the longest FQDN or user@fqdn identity (JUNOSe).
	MaxIdentityLen = 80
)

// Config is a parsed and validated configuration. Parse returns it with
// every default filled in and every tunnel resolved: a Tunnel carries its
// effective lifetime, DPD settings, driver, transform set and VRs, so a
// consumer never looks at the global settings to interpret a tunnel.
//
// A Config is not modified after Parse returns it and may be read from
// several goroutines; Zero is the exception.
type Config struct {
	File string // the name given to Parse

	// Lifetime is the global user SA lifetime ("ipsec lifetime").
	Lifetime ipsec.Lifetime
	// DPD is the global dead peer detection setting ("ipsec dpd").
	DPD ipsec.DPD
	// FailoverHoldDown is the global failover hold-down time.
	FailoverHoldDown time.Duration
	// Backoff puts off the next negotiation of a tunnel's selector pair
	// after failed ones ("ipsec negotiation back-off").
	Backoff Backoff
	// IKEVersion is the IKE version of the signaled tunnels that do not
	// set one ("ipsec ike-version"): 1 (the default, as JUNOSe) or 2.
	IKEVersion int
	// FragmentMTU is the largest IP datagram an IKEv2 message fragment
	// fills (RFC 7383); 0 is the default (576 bytes over IPv4, 1280 over
	// IPv6), -1 is fragmentation off ("ipsec ike fragmentation").
	FragmentMTU int
	// CookieThreshold is the number of half-open IKEv2 SAs from which
	// IKE_SA_INIT requests must carry a cookie (RFC 7296 §2.6); nil is
	// the default (10), 0 always ("ipsec ike cookie-threshold").
	CookieThreshold *int
	// Retransmit is the retransmission schedule of IKE requests, both
	// versions ("ipsec ike retransmit"); DefaultRetransmit when unset.
	Retransmit Retransmit
	// ReplayWindow is the global anti-replay window; 0 is off.
	ReplayWindow int
	// Driver is the global crypto driver choice.
	Driver Driver
	// DPDK holds the EAL arguments and virtual devices of the dpdk driver.
	DPDK DPDK
	// Dataplane holds the packet processing settings ("dataplane").
	Dataplane Dataplane

	// VRs are the virtual routers, DefaultVR first, then in file order.
	VRs []VR
	// TransformSets are the transform sets in file order.
	TransformSets []TransformSet
	// IKEPolicies are the ISAKMP policy rules by priority, highest (the
	// lowest number) first. When the file has none it holds
	// DefaultIKEPolicy().
	IKEPolicies []IKEPolicy
	// PreSharedKeys are the IKE pre-shared keys in file order.
	PreSharedKeys []PreSharedKey
	// Certificates are the files for rsa-signature authentication.
	Certificates Certificates

	// Tunnels are the secure IP interfaces in file order.
	Tunnels []*Tunnel
	// Routes are the static routes to secure IP interfaces.
	Routes []Route
	// PolicyRoutes are the source-based routes to secure IP interfaces.
	PolicyRoutes []PolicyRoute

	// SNMP holds the trap receivers and the enabled traps.
	SNMP SNMP
	// Metrics is the Prometheus listener; the zero value is off.
	Metrics netip.AddrPort
	// ControlSocket is the path of ismd's unix control socket.
	ControlSocket string

	// Checkpoint is where the SAs' state goes for a restart; Cluster the
	// node's cluster (zero: none).
	Checkpoint Checkpoint
	Cluster    Cluster
}

// Tunnel returns the tunnel called name (without "ipsec:"), or nil.
func (c *Config) Tunnel(name string) *Tunnel {
	for _, t := range c.Tunnels {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// VR returns the virtual router called name.
func (c *Config) VR(name string) (VR, bool) {
	for _, v := range c.VRs {
		if v.Name == name {
			return v, true
		}
	}
	return VR{}, false
}

// TransformSet returns the transform set called name.
func (c *Config) TransformSet(name string) (TransformSet, bool) {
	for _, s := range c.TransformSets {
		if s.Name == name {
			return s, true
		}
	}
	return TransformSet{}, false
}

// Zero overwrites every secret of the configuration: the manual SA keys,
// the pre-shared keys and the SNMP secrets. Tunnel.Equal still works on
// zeroed tunnels (it compares digests of the keys taken by Parse).
func (c *Config) Zero() {
	for _, t := range c.Tunnels {
		t.Zero()
	}
	for _, k := range c.PreSharedKeys {
		k.Key.Zero()
	}
	for _, h := range c.SNMP.Hosts {
		h.Community.Zero()
		h.AuthPassword.Zero()
		h.PrivPassword.Zero()
	}
}

// LogValue logs a summary of the configuration, never its secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("file", c.File),
		slog.Int("tunnels", len(c.Tunnels)),
		slog.Int("vrs", len(c.VRs)),
		slog.Int("routes", len(c.Routes)+len(c.PolicyRoutes)),
	)
}

// VR is a virtual router: a routing instance, here a Linux network
// namespace. The DefaultVR is the daemon's own namespace, Netns "".
type VR struct {
	Name  string
	Netns string
}

// Driver is a crypto driver choice.
type Driver string

// Drivers.
const (
	DriverAuto     Driver = "auto" // the best registered driver for each SA
	DriverSoftware Driver = "software"
	DriverDPDK     Driver = "dpdk"
	DriverKernel   Driver = "kernel"
)

// DPDK holds the settings of the dpdk driver.
type DPDK struct {
	EALArgs []string // extra EAL arguments, in order
	VDevs   []string // --vdev devices, e.g. "crypto_aesni_mb0"
}

// Route is a static route in the operational VR of its secure interface.
type Route struct {
	Prefix netip.Prefix
	Tunnel string // the tunnel name, without "ipsec:"
	VR     string // the tunnel's operational VR
}

// PolicyRoute sends traffic from a source prefix to a secure interface, in
// the interface's operational VR.
type PolicyRoute struct {
	Source netip.Prefix
	Tunnel string
	VR     string
}

// SNMP holds the trap settings.
type SNMP struct {
	Hosts []TrapHost
	// EngineID is the SNMPv3 engine ID of the daemon; nil lets the daemon
	// derive one.
	EngineID []byte
	// Traps are the enabled traps, in the order of AllTraps.
	Traps []Trap
}

// TrapHost is an SNMP trap receiver.
type TrapHost struct {
	Addr    netip.AddrPort
	Version SNMPVersion
	// Community is the SNMPv2c community.
	Community ipsec.Key
	// User, AuthProtocol, AuthPassword, PrivProtocol and PrivPassword are
	// the SNMPv3 USM settings (RFC 3414); the protocols are "" when unused.
	User         string
	AuthProtocol string // "md5", "sha" or "sha256"
	AuthPassword ipsec.Key
	PrivProtocol string // "des" or "aes"
	PrivPassword ipsec.Key
}

// LogValue logs the receiver, its version and user, never its secrets.
func (h TrapHost) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("address", h.Addr.String()),
		slog.String("version", string(h.Version)),
		slog.String("user", h.User),
	)
}

// LogValue logs the receivers and the traps, never the secrets.
func (s SNMP) LogValue() slog.Value {
	hosts := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		hosts[i] = h.Addr.String()
	}
	traps := make([]string, len(s.Traps))
	for i, t := range s.Traps {
		traps[i] = string(t)
	}
	return slog.GroupValue(slog.Any("hosts", hosts), slog.Any("traps", traps))
}

// SNMPVersion is the SNMP version of a trap receiver.
type SNMPVersion string

// SNMP versions.
const (
	SNMPv2c SNMPVersion = "2c"
	SNMPv3  SNMPVersion = "3"
)

// Trap names an SNMP trap.
type Trap string

// Traps.
const (
	TrapTunnelUp   Trap = "tunnel-up"   // a secure tunnel came up
	TrapTunnelDown Trap = "tunnel-down" // a secure tunnel went down
	TrapIKEFailure Trap = "ike-failure" // an IKE negotiation failed
	TrapDPD        Trap = "dpd"         // DPD declared a peer dead
	TrapFailover   Trap = "failover"    // a tunnel switched destination
	// TrapClusterOwnership: this cluster node took a tunnel group or
	// stopped owning one.
	TrapClusterOwnership Trap = "cluster-ownership"
)

// AllTraps returns every trap.
func AllTraps() []Trap {
	return []Trap{TrapTunnelUp, TrapTunnelDown, TrapIKEFailure, TrapDPD, TrapFailover, TrapClusterOwnership}
}
