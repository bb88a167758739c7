package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// tunnelCheck resolves one interface block.
type tunnelCheck struct {
	p  *parser
	d  *ifaceDraft
	c  *Config
	t  *Tunnel
	ok bool
}

// errf reports a problem at line, prefixed with what (a command, or the
// interface when line is its declaration).
func (k *tunnelCheck) errf(line int, what, format string, args ...any) {
	if line == k.d.line || what == "" {
		what = "interface tunnel ipsec:" + k.d.name
		line = k.d.line
	}
	k.p.errs.add(line, "%s: %s", what, fmt.Sprintf(format, args...))
	k.ok = false
}

// resolveTunnel builds the Tunnel of an interface block, or reports why it
// cannot and returns nil.
func (p *parser) resolveTunnel(d *ifaceDraft, c *Config, spis map[spiKey]spiUse) *Tunnel {
	k := &tunnelCheck{p: p, d: d, c: c, ok: true, t: &Tunnel{
		Name:         d.name,
		Pos:          Pos{File: p.file, Line: d.line},
		Description:  d.description.v,
		Address:      d.addr.v,
		Address6:     d.addr6.v,
		MTU:          int32(d.mtu.v),
		Mode:         d.mode.or(ipsec.Tunnel),
		TunnelSource: d.source.v,
		Driver:       d.driver.or(c.Driver),
		ReplayWindow: d.replay.or(c.ReplayWindow),
		ESN:          d.esn.or(false),
		UDPEncapPort: d.udpEncapPort.v,
		sourceLine:   int32(d.source.line),
	}}
	k.vrs()
	k.interfaceAddresses()
	k.endpoints()
	k.transformSet()
	switch {
	case d.typ.ok():
		k.t.Type = d.typ.v
	case d.sa[ipsec.Inbound].ok() || d.sa[ipsec.Outbound].ok():
		k.t.Type = Manual
	}
	if k.t.Type == Manual {
		k.manual(spis)
	} else {
		k.signaled()
	}
	k.selectors()
	if d.udpEncapPort.ok() && k.t.TransformSet.Protocol() == transform.AH {
		k.errf(d.udpEncapPort.line, "tunnel udp-encapsulation", "AH cannot be carried in UDP (RFC 3948 encapsulates ESP only)")
	}
	if !k.ok {
		k.t.Zero()
		return nil
	}
	return k.t
}

func (k *tunnelCheck) vrs() {
	d := k.d
	op := d.vr.or(DefaultVR)
	v, found := k.c.VR(op)
	if !found {
		k.errf(d.vr.line, "virtual-router", "no virtual-router %q is declared", op)
	}
	k.t.OperationalVR = v
	tv := d.tvr.or(op)
	if v, found = k.c.VR(tv); !found && d.tvr.ok() {
		k.errf(d.tvr.line, "transport-virtual-router", "no virtual-router %q is declared", tv)
	}
	k.t.TransportVR = v
}

func (k *tunnelCheck) interfaceAddresses() {
	d := k.d
	if k.t.Mode == ipsec.Transport {
		for _, a := range []struct {
			o   opt[netip.Prefix]
			cmd string
		}{{d.addr, "ip address"}, {d.addr6, "ipv6 address"}} {
			if a.o.ok() {
				k.errf(a.o.line, a.cmd, "a transport-mode tunnel has no IP interface above it")
			}
		}
	}
	// RFC 8200 §5: IPv6 needs a link MTU of at least 1280.
	if d.mtu.ok() && d.addr6.ok() && d.mtu.v < 1280 {
		k.errf(d.mtu.line, "tunnel mtu", "%d is below 1280, the IPv6 minimum (RFC 8200 §5)", d.mtu.v)
	}
}

func (k *tunnelCheck) endpoints() {
	d := k.d
	if !d.source.ok() && !d.failed["tunnel source"] {
		k.errf(d.line, "", "tunnel source is required")
	}
	if !d.dest.ok() && !d.failed["tunnel destination"] {
		k.errf(d.line, "", "tunnel destination is required")
	}
	k.t.TunnelDestination, k.t.BackupDestination = d.dest.v, d.backup.v
	src := d.source.v
	for _, e := range []struct {
		o   opt[Endpoint]
		cmd string
	}{{d.dest, "tunnel destination"}, {d.backup, "tunnel destination backup"}} {
		if a := e.o.v.Addr; e.o.ok() && src.IsValid() && a.IsValid() {
			switch {
			case a.Is4() != src.Is4():
				k.errf(e.o.line, e.cmd, "%s and tunnel source %s are of different IP versions", a, src)
			case a == src:
				k.errf(e.o.line, e.cmd, "%s is the tunnel source", a)
			}
		}
	}
	if d.backup.ok() && d.dest.ok() && d.backup.v == d.dest.v {
		k.errf(d.backup.line, "tunnel destination backup", "%s is the tunnel destination itself", d.backup.v)
	}
}

func (k *tunnelCheck) transformSet() {
	d := k.d
	if !d.tset.ok() {
		if !d.failed["tunnel transform-set"] {
			k.errf(d.line, "", "tunnel transform-set is required")
		}
		return
	}
	s, found := k.c.TransformSet(d.tset.v)
	if !found {
		k.errf(d.tset.line, "tunnel transform-set", "no ipsec transform-set %q is declared", d.tset.v)
		return
	}
	k.t.TransformSet = s
}

// signaledOnly are the settings a manual tunnel may not have.
func (k *tunnelCheck) signaledOnly() []struct {
	line int
	cmd  string
} {
	d := k.d
	return []struct {
		line int
		cmd  string
	}{
		{d.backup.line, "tunnel destination backup"},
		{d.pfs.line, "tunnel pfs group"},
		{d.localID.line, "tunnel local-identity"},
		{d.remoteID.line, "tunnel remote-identity"},
		{d.ikeMode.line, "tunnel ike-mode"},
		{d.ikeVersion.line, "tunnel ike-version"},
		{d.dpd.on.line, "tunnel dpd"},
		{max(d.dpd.sent.line, d.dpd.silent.line, d.dpd.idle.line), "tunnel dpd timers"},
		{max(d.dpd.retryI.line, d.dpd.retries.line), "tunnel dpd retry"},
		{d.holdDown.line, "tunnel failover hold-down"},
	}
}

func (k *tunnelCheck) signaled() {
	d, t, c := k.d, k.t, k.c
	for _, dir := range []ipsec.Direction{ipsec.Inbound, ipsec.Outbound} {
		if o := d.sa[dir]; o.ok() {
			k.errf(o.line, "tunnel sa "+dir.String(), "a signaled tunnel gets its SAs from IKE; remove the line or set \"tunnel type manual\"")
			o.v.cipher.Zero()
			o.v.auth.Zero()
		}
	}
	t.Lifetime = ipsec.Lifetime{
		Time:  d.lifetime.seconds.or(c.Lifetime.Time),
		Bytes: d.lifetime.bytes.or(c.Lifetime.Bytes),
	}
	t.PFSGroup = d.pfs.v
	t.IKEVersion = d.ikeVersion.or(c.IKEVersion)
	t.IKEMode = d.ikeMode.or(MainMode)
	if t.IKEMode == AggressiveMode && t.IKEVersion == 2 {
		k.errf(d.ikeMode.line, "tunnel ike-mode", "aggressive mode is IKEv1 only, and this tunnel uses IKEv2 (%s)", versionWhere(d))
	}
	k.versionChecks()
	t.DPD = d.dpd.resolve(c.DPD)
	t.FailoverHoldDown = d.holdDown.or(c.FailoverHoldDown)
	t.LocalIdentity = d.localID.or(Identity{Kind: IdentityAddress, Value: d.source.v.String(), Addr: d.source.v})
	t.RemoteIdentity = d.remoteID.v
	if !d.remoteID.ok() {
		t.RemoteIdentity = endpointIdentity(d.dest.v)
	}
	k.aggressive()
	if k.ok && len(d.failed) == 0 {
		// A missing key matters only once the rest of the tunnel is right.
		k.preSharedKeys()
	}
}

func endpointIdentity(e Endpoint) Identity {
	if e.IsFQDN() {
		return Identity{Kind: IdentityFQDN, Value: e.FQDN}
	}
	return Identity{Kind: IdentityAddress, Value: e.Addr.String(), Addr: e.Addr}
}

// usesPSK reports whether some policy rule authenticates with pre-shared
// keys, and onlyPSK whether all do.
func usesPSK(c *Config) (some, all bool) {
	all = true
	for _, r := range c.IKEPolicies {
		if r.Authentication == PreSharedKeyAuth {
			some = true
		} else {
			all = false
		}
	}
	return some, all
}

// aggressive checks the JUNOSe rule: with pre-shared keys, FQDN (and
// user@fqdn) identities need IKEv1 aggressive mode, since main mode picks
// the key by address before the identities are exchanged (RFC 2409 §5.4).
func (k *tunnelCheck) aggressive() {
	d, t := k.d, k.t
	if some, _ := usesPSK(k.c); !some || t.IKEVersion != 1 || t.IKEMode != MainMode {
		return
	}
	named := func(id Identity) bool { return id.Kind == IdentityFQDN || id.Kind == IdentityUserFQDN }
	line, cmd := 0, ""
	switch {
	case named(t.LocalIdentity):
		line, cmd = d.localID.line, "tunnel local-identity"
	case named(t.RemoteIdentity) && d.remoteID.ok():
		line, cmd = d.remoteID.line, "tunnel remote-identity"
	case named(t.RemoteIdentity):
		line, cmd = d.dest.line, "tunnel destination"
	default:
		return
	}
	k.errf(line, cmd, "pre-shared keys with an FQDN or user@fqdn identity need IKEv1 aggressive mode: add \"tunnel ike-mode aggressive\" (or \"tunnel ike-version 2\", or only signature policy rules)")
}

// preSharedKeys checks that a tunnel whose every policy rule needs a
// pre-shared key has one, for its destination and its backup.
func (k *tunnelCheck) preSharedKeys() {
	d, t := k.d, k.t
	if _, all := usesPSK(k.c); !all {
		return
	}
	for _, e := range []struct {
		o   opt[Endpoint]
		cmd string
	}{{d.dest, "tunnel destination"}, {d.backup, "tunnel destination backup"}} {
		if !e.o.ok() {
			continue
		}
		id := t.RemoteIdentity
		if e.cmd == "tunnel destination backup" && !d.remoteID.ok() {
			id = endpointIdentity(e.o.v)
		}
		if !hasPSK(k.c, e.o.v.Addr, id) {
			k.errf(e.o.line, e.cmd, "no ipsec pre-shared-key for %s (address or identity %s), and every isakmp-policy-rule uses pre-shared keys", e.o.v, id)
		}
	}
}

// hasPSK reports whether a key exists for the peer address or identity; a
// user@fqdn identity also finds the key of its FQDN, as JUNOSe searches.
func hasPSK(c *Config, addr netip.Addr, id Identity) bool {
	_, fqdn, isUser := strings.Cut(id.Value, "@")
	for _, k := range c.PreSharedKeys {
		switch {
		case k.Addr.IsValid() && (k.Addr == addr || (id.Kind == IdentityAddress && k.Addr == id.Addr)):
			return true
		case k.Identity.Kind != IdentityNone && strings.EqualFold(k.Identity.Value, id.Value):
			return true
		case isUser && id.Kind == IdentityUserFQDN && k.Identity.Kind == IdentityFQDN && strings.EqualFold(k.Identity.Value, fqdn):
			return true
		}
	}
	return false
}

// selectors resolves "any" selectors to a family and checks that the two
// selectors agree on it.
func (k *tunnelCheck) selectors() {
	d, t := k.d, k.t
	six := false
	switch {
	case d.local.ok() && d.local.v.Kind != selector.Any:
		six = d.local.v.Is6()
	case d.remote.ok() && d.remote.v.Kind != selector.Any:
		six = d.remote.v.Is6()
	case t.Mode == ipsec.Transport:
		six = d.source.v.Is6()
	case !d.addr.ok() && d.addr6.ok():
		six = true
	}
	anyOf := selector.AnyOf(netip.IPv4Unspecified())
	if six {
		anyOf = selector.AnyOf(netip.IPv6Unspecified())
	}
	t.LocalSelector, t.RemoteSelector = anyOf, anyOf
	if d.local.ok() && d.local.v.Kind != selector.Any {
		t.LocalSelector = d.local.v
	}
	if d.remote.ok() && d.remote.v.Kind != selector.Any {
		t.RemoteSelector = d.remote.v
	}
	if t.LocalSelector.Is6() != t.RemoteSelector.Is6() {
		k.errf(d.remote.line, "tunnel remote-selector", "%s and local selector %s are of different IP versions", t.RemoteSelector, t.LocalSelector)
	}
}
