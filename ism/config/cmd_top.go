package config

import (
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// topCommands are the commands of the top level.
var topCommands = []command{
	{"virtual-router", "NAME [netns NETNS]", 1, 3, false, (*parser).cmdVR},
	{"ipsec lifetime", "[seconds SECONDS] [kilobytes KILOBYTES]", 2, 4, true, (*parser).cmdIPsecLifetime},
	{"ipsec transform-set", "NAME", 1, 1, false, (*parser).cmdTransformSet},
	{"ipsec isakmp-policy-rule", "PRIORITY", 1, 1, false, (*parser).cmdPolicyRule},
	{"ipsec pre-shared-key", "address ADDRESS|identity IDENTITY ascii TEXT|hex HEX", 4, 4, false, (*parser).cmdPSK},
	{"ipsec local-certificate", "CERTIFICATE-FILE key KEY-FILE [rsa-pss]", 3, 4, true, (*parser).cmdLocalCert},
	{"ipsec ca-certificate", "FILE", 1, 1, false, (*parser).cmdCACert},
	{"ipsec replay-window", "PACKETS", 1, 1, true, (*parser).cmdIPsecReplay},
	{"ipsec dpd", "on|off", 1, 1, true, (*parser).cmdIPsecDPD},
	{"ipsec dpd timers", "[sent SECONDS] [silent SECONDS] [idle SECONDS]", 2, 6, true, (*parser).cmdIPsecDPDTimers},
	{"ipsec dpd retry", "[interval SECONDS] [count N]", 2, 4, true, (*parser).cmdIPsecDPDRetry},
	{"ipsec failover hold-down", "SECONDS", 1, 1, true, (*parser).cmdIPsecHoldDown},
	{"ipsec negotiation back-off", "[initial SECONDS] [maximum SECONDS]", 2, 4, true, (*parser).cmdIPsecBackoff},
	{"ipsec ike-version", "1|2", 1, 1, true, (*parser).cmdIPsecIKEVersion},
	{"ipsec ike fragmentation", "mtu BYTES|off", 1, 2, true, (*parser).cmdIKEFragmentation},
	{"ipsec ike cookie-threshold", "N", 1, 1, true, (*parser).cmdCookieThreshold},
	{"ipsec ike retransmit", "[count N] [timeout MILLISECONDS] [base FACTOR] [cap MILLISECONDS]", 2, 8, true, (*parser).cmdIKERetransmit},
	{"driver", "auto|software|dpdk|kernel", 1, 1, true, (*parser).cmdDriver},
	{"dpdk eal-args", "ARGUMENT...", 1, -1, true, (*parser).cmdEALArgs},
	{"dpdk vdev", "DEVICE", 1, 1, false, (*parser).cmdVDev},
	{"dataplane workers", "auto|N", 1, 1, true, (*parser).cmdDataplaneWorkers},
	{"dataplane raw-transport", "auto|ring|socket", 1, 1, true, (*parser).cmdDataplaneRaw},
	{"dataplane udp-sockets", "wildcard|per-address", 1, 1, true, (*parser).cmdDataplaneUDP},
	{"interface tunnel", "ipsec:NAME", 1, 1, false, (*parser).cmdInterface},
	{"ip route", "PREFIX MASK|PREFIX/LENGTH ipsec:NAME", 2, 3, false, (*parser).cmdRoute},
	{"ip policy-route source", "PREFIX MASK|PREFIX/LENGTH ipsec:NAME", 2, 3, false, (*parser).cmdPolicyRoute},
	{"snmp-server host", "ADDRESS [udp-port PORT] version 2c community TEXT | version 3 user NAME [auth md5|sha|sha256 PASSWORD [priv des|aes PASSWORD]]", 4, 13, false, (*parser).cmdSNMPHost},
	{"snmp-server engine-id", "HEX", 1, 1, true, (*parser).cmdSNMPEngineID},
	{"snmp-server enable traps", "[TRAP...]", 0, -1, true, (*parser).cmdSNMPTraps},
	{"metrics listen", "ADDRESS:PORT", 1, 1, true, (*parser).cmdMetrics},
	{"control socket", "PATH", 1, 1, true, (*parser).cmdControl},
}

func (p *parser) cmdVR(c *cmdCtx) {
	name, ok := c.name(0, "virtual router name")
	if !ok {
		return
	}
	netns := name
	switch len(c.args) {
	case 2:
		c.errf("expected netns NETNS after the name")
		return
	case 3:
		if _, ok := c.keyword(1, "netns"); !ok {
			return
		}
		if netns, ok = c.name(2, "netns name"); !ok {
			return
		}
	}
	if name == DefaultVR {
		c.errf("%q is the daemon's own namespace and cannot be declared", DefaultVR)
		return
	}
	for _, v := range p.d.vrs {
		if v.Name == name {
			p.errs.add(c.line, "duplicate virtual-router %q (first on line %d)", name, v.line)
			return
		}
		if v.Netns == netns {
			c.errf("netns %q is already used by virtual-router %q (line %d)", netns, v.Name, v.line)
			return
		}
	}
	p.d.vrs = append(p.d.vrs, vrDraft{VR: VR{Name: name, Netns: netns}, line: c.line})
}

// seconds parses argument i as a number of seconds from lo to hi.
func (c *cmdCtx) seconds(i int, what string, lo, hi uint64) (time.Duration, bool) {
	n, ok := c.number(i, what, lo, hi)
	return time.Duration(n) * time.Second, ok
}

// lifetime parses "[seconds N] [kilobytes N]" into l.
func (c *cmdCtx) lifetime(l *lifetimeDraft) {
	idx, ok := c.pairs(0, false, "seconds", "kilobytes")
	if !ok {
		return
	}
	if i, has := idx["seconds"]; has {
		if v, ok := c.seconds(i, "seconds", uint64(ipsec.MinLifetime/time.Second), uint64(ipsec.MaxLifetime/time.Second)); ok {
			l.seconds.put(v, c.line)
		}
	}
	if i, has := idx["kilobytes"]; has {
		if v, ok := c.number(i, "kilobytes", ipsec.MinLifetimeBytes/1024, ipsec.MaxLifetimeBytes/1024); ok {
			l.bytes.put(v*1024, c.line)
		}
	}
}

func (p *parser) cmdIPsecLifetime(c *cmdCtx) { c.lifetime(&p.d.g.lifetime) }

// replayWindow parses argument 0 as an anti-replay window.
func (c *cmdCtx) replayWindow(o *opt[int]) {
	if n, ok := c.number(0, "window", 0, MaxReplayWindow); ok {
		o.put(int(n), c.line)
	}
}

func (p *parser) cmdIPsecReplay(c *cmdCtx) { c.replayWindow(&p.d.g.replay) }

// onOff parses argument 0 as on or off.
func (c *cmdCtx) onOff(o *opt[bool]) {
	if k, ok := c.keyword(0, "on", "off"); ok {
		o.put(k == "on", c.line)
	}
}

func (p *parser) cmdIPsecDPD(c *cmdCtx) { c.onOff(&p.d.g.dpd.on) }

// dpdTimers parses "[sent S] [silent S] [idle S]".
func (c *cmdCtx) dpdTimers(d *dpdDraft) {
	idx, ok := c.pairs(0, false, "sent", "silent", "idle")
	if !ok {
		return
	}
	timers := []struct {
		k string
		o *opt[time.Duration]
	}{{"sent", &d.sent}, {"silent", &d.silent}, {"idle", &d.idle}}
	for _, t := range timers {
		if i, has := idx[t.k]; has {
			if v, ok := c.seconds(i, t.k, 1, 86400); ok {
				t.o.put(v, c.line)
			}
		}
	}
}

func (p *parser) cmdIPsecDPDTimers(c *cmdCtx) { c.dpdTimers(&p.d.g.dpd) }

// dpdRetry parses "[interval S] [count N]".
func (c *cmdCtx) dpdRetry(d *dpdDraft) {
	idx, ok := c.pairs(0, false, "interval", "count")
	if !ok {
		return
	}
	if i, has := idx["interval"]; has {
		if v, ok := c.seconds(i, "interval", 1, 3600); ok {
			d.retryI.put(v, c.line)
		}
	}
	if i, has := idx["count"]; has {
		if v, ok := c.number(i, "count", 1, 100); ok {
			d.retries.put(int(v), c.line)
		}
	}
}

func (p *parser) cmdIPsecDPDRetry(c *cmdCtx) { c.dpdRetry(&p.d.g.dpd) }

// holdDown parses argument 0 as a failover hold-down time.
func (c *cmdCtx) holdDown(o *opt[time.Duration]) {
	if v, ok := c.seconds(0, "hold-down", 0, 86400); ok {
		o.put(v, c.line)
	}
}

func (p *parser) cmdIPsecHoldDown(c *cmdCtx) { c.holdDown(&p.d.g.holdDown) }

// driverArg parses argument 0 as a driver choice.
func (c *cmdCtx) driverArg(o *opt[Driver]) {
	k, ok := c.keyword(0, string(DriverAuto), string(DriverSoftware), string(DriverDPDK), string(DriverKernel))
	if ok {
		o.put(Driver(k), c.line)
	}
}

func (p *parser) cmdDriver(c *cmdCtx) { c.driverArg(&p.d.g.driver) }

func (p *parser) cmdEALArgs(c *cmdCtx) {
	for i := range c.args {
		p.d.g.dpdk.EALArgs = append(p.d.g.dpdk.EALArgs, c.arg(i))
	}
}

func (p *parser) cmdVDev(c *cmdCtx) {
	v := c.arg(0)
	if v == "" || strings.HasPrefix(v, "-") {
		c.errf("bad device %q", v)
		return
	}
	p.d.g.dpdk.VDevs = append(p.d.g.dpdk.VDevs, v)
}

func (p *parser) cmdMetrics(c *cmdCtx) {
	ap, err := netip.ParseAddrPort(c.arg(0))
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		c.errf("bad listen address %q: expected ADDRESS:PORT, e.g. 127.0.0.1:9469 or [::1]:9469", c.arg(0))
		return
	}
	p.d.g.metrics = ap
}

func (p *parser) cmdControl(c *cmdCtx) {
	path := c.arg(0)
	if !filepath.IsAbs(path) {
		c.errf("socket path %q is not absolute", path)
		return
	}
	p.d.g.control.put(filepath.Clean(path), c.line)
}

// tunnelRef parses argument i as "ipsec:NAME" and returns NAME.
func (c *cmdCtx) tunnelRef(i int) (string, bool) {
	s := c.arg(i)
	name, ok := strings.CutPrefix(s, "ipsec:")
	if !ok || !validName(name) {
		c.errf("bad interface %q: expected ipsec:NAME", s)
		return "", false
	}
	return name, true
}

func (p *parser) cmdRoute(c *cmdCtx) {
	if r, ok := c.route("destination"); ok {
		p.d.routes = append(p.d.routes, r)
	}
}

func (p *parser) cmdPolicyRoute(c *cmdCtx) {
	if r, ok := c.route("source"); ok {
		p.d.proutes = append(p.d.proutes, r)
	}
}

// route parses "PREFIX MASK|PREFIX/LENGTH ipsec:NAME".
func (c *cmdCtx) route(what string) (routeDraft, bool) {
	if len(c.args) == 2 && !strings.Contains(c.arg(0), "/") {
		c.errf("%s %s needs a mask or a /length", what, c.arg(0))
		return routeDraft{}, false
	}
	pfx, n, ok := c.network(0, what)
	if !ok {
		return routeDraft{}, false
	}
	if n+1 != len(c.args) {
		c.errf("expected ipsec:NAME after the prefix")
		return routeDraft{}, false
	}
	name, ok := c.tunnelRef(n)
	if !ok {
		return routeDraft{}, false
	}
	return routeDraft{prefix: pfx, tunnel: name, line: c.line}, true
}
