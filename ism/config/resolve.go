package config

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// resolve checks the cross-references of the drafts, fills in defaults and
// builds the Config. Problems go to p.errs; the Config is then incomplete.
func (p *parser) resolve() *Config {
	g := &p.d.g
	c := &Config{
		File: p.file,
		Lifetime: ipsec.Lifetime{
			Time:  g.lifetime.seconds.or(DefaultLifetimeSeconds * time.Second),
			Bytes: g.lifetime.bytes.or(DefaultLifetimeKilobytes * 1024),
		},
		DPD: g.dpd.resolve(ipsec.DPD{
			Sent:          ipsec.DefaultDPDSent,
			Silent:        ipsec.DefaultDPDSilent,
			Idle:          ipsec.DefaultDPDIdle,
			RetryInterval: ipsec.DefaultDPDRetryInterval,
			Retries:       ipsec.DefaultDPDRetries,
		}),
		FailoverHoldDown: g.holdDown.or(ipsec.DefaultFailoverHoldDown),
		Backoff:          p.resolveBackoff(),
		IKEVersion:       g.ikeVersion.or(1),
		FragmentMTU:      g.fragMTU.v,
		Retransmit:       g.retransmit.or(DefaultRetransmit),
		ReplayWindow:     g.replay.or(DefaultReplayWindow),
		Driver:           g.driver.or(DriverAuto),
		DPDK:             g.dpdk,
		Dataplane:        g.dataplane.resolve(),
		VRs:              []VR{{Name: DefaultVR}},
		Certificates:     g.certs,
		Metrics:          g.metrics,
		ControlSocket:    g.control.or(DefaultControlSocket),
	}
	if g.cookies.ok() {
		n := g.cookies.v
		c.CookieThreshold = &n
	}
	for _, v := range p.d.vrs {
		c.VRs = append(c.VRs, v.VR)
	}
	c.TransformSets = p.resolveTransformSets()
	c.IKEPolicies = p.resolvePolicies()
	for _, k := range p.d.psks {
		c.PreSharedKeys = append(c.PreSharedKeys, k.PreSharedKey)
	}
	c.SNMP = p.resolveSNMP()
	spis := map[spiKey]spiUse{}
	for _, d := range p.d.ifaces {
		if t := p.resolveTunnel(d, c, spis); t != nil {
			c.Tunnels = append(c.Tunnels, t)
		}
	}
	p.checkIKEVersions(c)
	c.Routes = p.resolveRoutes(c, p.d.routes, "ip route")
	for _, r := range p.resolveRoutes(c, p.d.proutes, "ip policy-route source") {
		c.PolicyRoutes = append(c.PolicyRoutes, PolicyRoute{Source: r.Prefix, Tunnel: r.Tunnel, VR: r.VR})
	}
	c.Checkpoint, c.Cluster = p.resolveCheckpoint(), p.resolveCluster(c)
	return c
}

func (p *parser) resolveTransformSets() []TransformSet {
	var out []TransformSet
	for _, d := range p.d.tsets {
		if len(d.items) == 0 {
			p.errs.add(d.line, "ipsec transform-set %s has no transforms", d.name)
			continue
		}
		items := slices.Clone(d.items)
		slices.SortFunc(items, func(a, b tsetItem) int { return cmp.Compare(a.num, b.num) })
		s := TransformSet{Name: d.name}
		for _, it := range items {
			if first := items[0]; it.t.Protocol != first.t.Protocol {
				p.errs.add(it.line, "transform: %s is %s but transform %d (%s) is %s: ESP and AH are never used together on a tunnel, so a transform set holds one protocol",
					it.t, it.t.Protocol, first.num, first.t, first.t.Protocol)
			}
			s.Transforms = append(s.Transforms, it.t)
		}
		out = append(out, s)
	}
	return out
}

func (p *parser) resolvePolicies() []IKEPolicy {
	if len(p.d.rules) == 0 {
		return []IKEPolicy{DefaultIKEPolicy()}
	}
	def := DefaultIKEPolicy()
	rules := slices.Clone(p.d.rules)
	slices.SortFunc(rules, func(a, b *policyDraft) int { return cmp.Compare(a.prio, b.prio) })
	var out []IKEPolicy
	sigChecked := false
	for _, r := range rules {
		pol := IKEPolicy{
			Priority:             r.prio,
			Encryption:           r.enc.or(def.Encryption),
			Hash:                 r.hash.or(def.Hash),
			Group:                r.group.or(def.Group),
			PRF:                  r.prf.v,
			AdditionalKE:         r.addKE.v.methods,
			AdditionalKEOptional: r.addKE.v.optional,
			Authentication:       r.auth.or(def.Authentication),
			Lifetime:             r.life.or(def.Lifetime),
			Pos:                  Pos{File: p.file, Line: r.line},
			AuthPos:              Pos{File: p.file, Line: max(r.auth.line, r.line)},
		}
		if pol.Authentication.Signature() && !sigChecked {
			sigChecked = true
			if p.d.g.certLine == 0 {
				p.errs.add(r.auth.line, "authentication: %s needs \"ipsec local-certificate\"", pol.Authentication)
			}
			if p.d.g.caLine == 0 {
				p.errs.add(r.auth.line, "authentication: %s needs at least one \"ipsec ca-certificate\"", pol.Authentication)
			}
		}
		out = append(out, pol)
	}
	return out
}

func (p *parser) resolveSNMP() SNMP {
	g := &p.d.g
	s := SNMP{EngineID: g.engineID}
	for _, h := range g.hosts {
		s.Hosts = append(s.Hosts, h.TrapHost)
	}
	switch {
	case g.traps.ok():
		s.Traps = g.traps.v
	case len(s.Hosts) > 0:
		s.Traps = AllTraps()
	}
	return s
}

// resolveRoutes checks the routes of one command against the tunnels and
// returns them in their operational VRs.
func (p *parser) resolveRoutes(c *Config, drafts []routeDraft, cmd string) []Route {
	var out []Route
	seen := map[Route]int{}
	tunnels := make(map[string]*Tunnel, len(c.Tunnels))
	for _, t := range c.Tunnels {
		tunnels[t.Name] = t
	}
	for _, r := range drafts {
		var vr string
		if t := tunnels[r.tunnel]; t != nil {
			vr = t.OperationalVR.Name
		} else if d := p.ifaceDraft(r.tunnel); d != nil {
			vr = d.vr.or(DefaultVR) // the tunnel has errors of its own
		} else {
			p.errs.add(r.line, "%s: no interface tunnel ipsec:%s is declared", cmd, r.tunnel)
			continue
		}
		key := Route{Prefix: r.prefix, VR: vr}
		if first, dup := seen[key]; dup {
			p.errs.add(r.line, "%s: %s in virtual-router %s is already routed on line %d", cmd, r.prefix, vr, first)
			continue
		}
		seen[key] = r.line
		out = append(out, Route{Prefix: r.prefix, Tunnel: r.tunnel, VR: vr})
	}
	return out
}

// ifaceDraft returns the interface block of a tunnel, or nil.
func (p *parser) ifaceDraft(name string) *ifaceDraft { return p.d.ifaceByName[name] }

// spiKey identifies a manual SA: RFC 4301 §4.1, an SPI is unique per
// destination address and protocol.
type spiKey struct {
	spi   uint32
	proto uint8
	dst   netip.Addr
}

// spiUse says which SA took an SPI first.
type spiUse struct {
	tunnel string
	dir    ipsec.Direction
	line   int
}
