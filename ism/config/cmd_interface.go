package config

import (
	"strconv"
	"strings"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// interfaceCommands are the commands of an "interface tunnel" block.
var interfaceCommands = []command{
	{"description", "TEXT...", 1, -1, true, (*parser).cmdDescription},
	{"virtual-router", "NAME", 1, 1, true, (*parser).cmdIfVR},
	{"transport-virtual-router", "NAME", 1, 1, true, (*parser).cmdIfTransportVR},
	{"ip address", "ADDRESS MASK|ADDRESS/LENGTH", 1, 2, true, (*parser).cmdIfAddress},
	{"ipv6 address", "ADDRESS/LENGTH", 1, 1, true, (*parser).cmdIfAddress6},
	{"tunnel type", "manual|signaled", 1, 1, true, (*parser).cmdTunnelType},
	{"tunnel mode", "tunnel|transport", 1, 1, true, (*parser).cmdTunnelMode},
	{"tunnel source", "ADDRESS", 1, 1, true, (*parser).cmdTunnelSource},
	{"tunnel destination", "ADDRESS|FQDN", 1, 1, true, (*parser).cmdTunnelDestination},
	{"tunnel destination backup", "ADDRESS|FQDN", 1, 1, true, (*parser).cmdTunnelBackup},
	{"tunnel transform-set", "NAME", 1, 1, true, (*parser).cmdTunnelTransformSet},
	{"tunnel local-selector", "SELECTOR", 1, 3, true, (*parser).cmdLocalSelector},
	{"tunnel remote-selector", "SELECTOR", 1, 3, true, (*parser).cmdRemoteSelector},
	{"tunnel sa", "inbound|outbound esp|ah spi SPI [cipher-key HEX] [auth-key HEX]", 4, 8, false, (*parser).cmdTunnelSA},
	{"tunnel lifetime", "[seconds SECONDS] [kilobytes KILOBYTES]", 2, 4, true, (*parser).cmdTunnelLifetime},
	{"tunnel pfs group", "1|2|5|14|15|16|19|20|21|31", 1, 1, true, (*parser).cmdTunnelPFS},
	{"tunnel local-identity", "IDENTITY", 1, 1, true, (*parser).cmdLocalIdentity},
	{"tunnel remote-identity", "IDENTITY", 1, 1, true, (*parser).cmdRemoteIdentity},
	{"tunnel ike-mode", "main|aggressive", 1, 1, true, (*parser).cmdIKEMode},
	{"tunnel ike-version", "1|2", 1, 1, true, (*parser).cmdIKEVersion},
	{"tunnel dpd", "on|off", 1, 1, true, (*parser).cmdTunnelDPD},
	{"tunnel dpd timers", "[sent SECONDS] [silent SECONDS] [idle SECONDS]", 2, 6, true, (*parser).cmdTunnelDPDTimers},
	{"tunnel dpd retry", "[interval SECONDS] [count N]", 2, 4, true, (*parser).cmdTunnelDPDRetry},
	{"tunnel failover hold-down", "SECONDS", 1, 1, true, (*parser).cmdTunnelHoldDown},
	{"tunnel driver", "auto|software|dpdk|kernel", 1, 1, true, (*parser).cmdTunnelDriver},
	{"tunnel replay-window", "PACKETS", 1, 1, true, (*parser).cmdTunnelReplay},
	{"tunnel esn", "on|off", 1, 1, true, (*parser).cmdTunnelESN},
	{"tunnel udp-encapsulation", "[port PORT]", 0, 2, true, (*parser).cmdUDPEncap},
	{"tunnel mtu", "BYTES", 1, 1, true, (*parser).cmdTunnelMTU},
}

func (p *parser) cmdInterface(c *cmdCtx) {
	name, ok := c.tunnelRef(0)
	if !ok {
		return
	}
	if t := p.ifaceDraft(name); t != nil {
		p.errs.add(c.line, "duplicate interface tunnel ipsec:%s (first on line %d)", name, t.line)
		return
	}
	t := &ifaceDraft{name: name, line: c.line, failed: map[string]bool{}}
	p.d.ifaces = append(p.d.ifaces, t)
	if p.d.ifaceByName == nil {
		p.d.ifaceByName = map[string]*ifaceDraft{}
	}
	p.d.ifaceByName[name] = t
	p.open(interfaceBlock, "interface tunnel ipsec:"+name).iface = t
}

func (p *parser) iface() *ifaceDraft { return p.cur.iface }

func (p *parser) cmdDescription(c *cmdCtx) {
	words := make([]string, len(c.args))
	for i := range c.args {
		words[i] = c.arg(i)
	}
	p.iface().description.put(strings.Join(words, " "), c.line)
}

func (p *parser) cmdIfVR(c *cmdCtx) {
	if n, ok := c.name(0, "virtual router name"); ok {
		p.iface().vr.put(n, c.line)
	}
}

func (p *parser) cmdIfTransportVR(c *cmdCtx) {
	if n, ok := c.name(0, "virtual router name"); ok {
		p.iface().tvr.put(n, c.line)
	}
}

func (p *parser) cmdIfAddress(c *cmdCtx) {
	pfx, n, ok := c.prefix(0, "address")
	if !ok {
		return
	}
	if n != len(c.args) {
		c.errf("unexpected %q after the address", c.arg(n))
		return
	}
	if !pfx.Addr().Is4() {
		c.errf("%s is not an IPv4 address; use ipv6 address", pfx)
		return
	}
	p.iface().addr.put(pfx, c.line)
}

func (p *parser) cmdIfAddress6(c *cmdCtx) {
	pfx, _, ok := c.prefix(0, "address")
	if !ok {
		return
	}
	if !pfx.Addr().Is6() || pfx.Addr().Is4In6() {
		c.errf("%s is not an IPv6 address; use ip address", pfx)
		return
	}
	p.iface().addr6.put(pfx, c.line)
}

func (p *parser) cmdTunnelType(c *cmdCtx) {
	if k, ok := c.keyword(0, "manual", "signaled"); ok {
		p.iface().typ.put(map[string]TunnelType{"manual": Manual, "signaled": Signaled}[k], c.line)
	}
}

func (p *parser) cmdTunnelMode(c *cmdCtx) {
	if k, ok := c.keyword(0, "tunnel", "transport"); ok {
		p.iface().mode.put(map[string]ipsec.Mode{"tunnel": ipsec.Tunnel, "transport": ipsec.Transport}[k], c.line)
	}
}

func (p *parser) cmdTunnelSource(c *cmdCtx) {
	if a, ok := c.addr(0, "tunnel source"); ok {
		p.iface().source.put(a, c.line)
	}
}

func (p *parser) cmdTunnelDestination(c *cmdCtx) {
	if e, ok := c.endpoint(0, "tunnel destination"); ok {
		p.iface().dest.put(e, c.line)
	}
}

func (p *parser) cmdTunnelBackup(c *cmdCtx) {
	if e, ok := c.endpoint(0, "backup destination"); ok {
		p.iface().backup.put(e, c.line)
	}
}

func (p *parser) cmdTunnelTransformSet(c *cmdCtx) {
	if n, ok := c.name(0, "transform set name"); ok {
		p.iface().tset.put(n, c.line)
	}
}

func (p *parser) cmdLocalSelector(c *cmdCtx) {
	if s, ok := c.selectorArgs("local selector"); ok {
		p.iface().local.put(s, c.line)
	}
}

func (p *parser) cmdRemoteSelector(c *cmdCtx) {
	if s, ok := c.selectorArgs("remote selector"); ok {
		p.iface().remote.put(s, c.line)
	}
}

// cmdTunnelSA parses
//
//	tunnel sa inbound|outbound esp|ah spi SPI [cipher-key HEX] [auth-key HEX]
//
// Key lengths are checked against the transform set when the tunnel is
// resolved.
func (p *parser) cmdTunnelSA(c *cmdCtx) {
	dir, ok := c.keyword(0, "inbound", "outbound")
	if !ok {
		p.iface().failed["tunnel sa"] = true
		return
	}
	errs := len(p.errs.errs)
	defer func() {
		if len(p.errs.errs) > errs {
			p.iface().failed["tunnel sa "+dir] = true
		}
	}()
	d := ipsec.Inbound
	if dir == "outbound" {
		d = ipsec.Outbound
	}
	proto, ok := c.keyword(1, "esp", "ah")
	if !ok {
		return
	}
	if _, ok := c.keyword(2, "spi"); !ok {
		return
	}
	spi, ok := c.spi(3)
	if !ok {
		return
	}
	sa := saDraft{proto: transform.ESP, spi: spi}
	if proto == "ah" {
		sa.proto = transform.AH
	}
	idx, ok := c.pairs(4, true, "cipher-key", "auth-key")
	if !ok {
		return
	}
	if i, has := idx["cipher-key"]; has {
		if sa.cipher, ok = c.hexKey(i, "cipher-key"); !ok {
			return
		}
	}
	if i, has := idx["auth-key"]; has {
		if sa.auth, ok = c.hexKey(i, "auth-key"); !ok {
			sa.cipher.Zero()
			return
		}
	}
	t := p.iface()
	if first := t.sa[d].line; first != 0 {
		sa.cipher.Zero()
		sa.auth.Zero()
		p.errs.add(c.line, "duplicate \"tunnel sa %s\" (first on line %d)", dir, first)
		return
	}
	t.sa[d].put(sa, c.line)
}

// spi parses argument i as an SPI, decimal or 0x hex. RFC 4303 §2.1: 0 is
// never sent and 1 to 255 are reserved by IANA.
func (c *cmdCtx) spi(i int) (uint32, bool) {
	s := c.arg(i)
	var n uint64
	var err error
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		n, err = strconv.ParseUint(h, 16, 64)
	} else {
		n, err = strconv.ParseUint(s, 10, 64)
	}
	switch {
	case err != nil || n > 1<<32-1:
		c.errf("bad SPI %q: expected a number from 256 to 4294967295, decimal or 0x hex", s)
	case n == 0:
		c.errf("SPI 0 is invalid (RFC 4303 §2.1)")
	case n < 256:
		c.errf("SPI %d is reserved: 1 to 255 are reserved by IANA (RFC 4303 §2.1)", n)
	default:
		return uint32(n), true
	}
	return 0, false
}

func (p *parser) cmdTunnelLifetime(c *cmdCtx) { c.lifetime(&p.iface().lifetime) }

func (p *parser) cmdTunnelPFS(c *cmdCtx) {
	if g, ok := c.group(0); ok {
		p.iface().pfs.put(g, c.line)
	}
}

func (p *parser) cmdLocalIdentity(c *cmdCtx) {
	if id, ok := c.identity(0, "local identity"); ok {
		p.iface().localID.put(id, c.line)
	}
}

func (p *parser) cmdRemoteIdentity(c *cmdCtx) {
	if id, ok := c.identity(0, "remote identity"); ok {
		p.iface().remoteID.put(id, c.line)
	}
}

func (p *parser) cmdIKEMode(c *cmdCtx) {
	if k, ok := c.keyword(0, "main", "aggressive"); ok {
		p.iface().ikeMode.put(map[string]IKEMode{"main": MainMode, "aggressive": AggressiveMode}[k], c.line)
	}
}

func (p *parser) cmdIKEVersion(c *cmdCtx) {
	if n, ok := c.number(0, "IKE version", 1, 2); ok {
		p.iface().ikeVersion.put(int(n), c.line)
	}
}

func (p *parser) cmdTunnelDPD(c *cmdCtx)       { c.onOff(&p.iface().dpd.on) }
func (p *parser) cmdTunnelDPDTimers(c *cmdCtx) { c.dpdTimers(&p.iface().dpd) }
func (p *parser) cmdTunnelDPDRetry(c *cmdCtx)  { c.dpdRetry(&p.iface().dpd) }
func (p *parser) cmdTunnelHoldDown(c *cmdCtx)  { c.holdDown(&p.iface().holdDown) }
func (p *parser) cmdTunnelDriver(c *cmdCtx)    { c.driverArg(&p.iface().driver) }
func (p *parser) cmdTunnelReplay(c *cmdCtx)    { c.replayWindow(&p.iface().replay) }
func (p *parser) cmdTunnelESN(c *cmdCtx)       { c.onOff(&p.iface().esn) }

func (p *parser) cmdUDPEncap(c *cmdCtx) {
	port := uint64(DefaultUDPEncapPort)
	if len(c.args) == 1 {
		c.errf("expected port PORT")
		return
	}
	if len(c.args) == 2 {
		if _, ok := c.keyword(0, "port"); !ok {
			return
		}
		var ok bool
		if port, ok = c.number(1, "port", 1, 65535); !ok {
			return
		}
	}
	p.iface().udpEncapPort.put(uint16(port), c.line)
}

func (p *parser) cmdTunnelMTU(c *cmdCtx) {
	if n, ok := c.number(0, "MTU", 68, 65535); ok {
		p.iface().mtu.put(int(n), c.line)
	}
}
