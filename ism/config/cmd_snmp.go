package config

import (
	"net/netip"
	"slices"

	"github.com/ismgw/ism/ipsec"
)

// minUSMPassword is the shortest SNMPv3 password: RFC 3414 §11.2 asks for
// at least 8 characters, and net-snmp refuses shorter ones.
const minUSMPassword = 8

// defaultTrapPort is the SNMP trap port (RFC 3417 §3).
const defaultTrapPort = 162

// cmdSNMPHost parses
//
//	snmp-server host ADDRESS [udp-port PORT] version 2c community TEXT
//	snmp-server host ADDRESS [udp-port PORT] version 3 user NAME
//	    [auth md5|sha|sha256 PASSWORD [priv des|aes PASSWORD]]
func (p *parser) cmdSNMPHost(c *cmdCtx) {
	a, ok := c.addr(0, "trap receiver")
	if !ok {
		return
	}
	h := hostDraft{line: c.line}
	port := uint64(defaultTrapPort)
	i := 1
	if c.arg(i) == "udp-port" {
		if port, ok = c.number(i+1, "udp-port", 1, 65535); !ok {
			return
		}
		i += 2
	}
	h.Addr = netip.AddrPortFrom(a, uint16(port))
	if i+1 >= len(c.args) {
		c.errf("expected version 2c or version 3")
		return
	}
	if _, ok := c.keyword(i, "version"); !ok {
		return
	}
	v, ok := c.keyword(i+1, "2c", "3")
	if !ok {
		return
	}
	h.Version = SNMPVersion(v)
	rest := c.args[i+2:]
	if h.Version == SNMPv2c {
		if len(rest) != 2 {
			c.errf("version 2c takes community TEXT")
			return
		}
		if _, ok := c.keyword(i+2, "community"); !ok {
			return
		}
		if h.Community, ok = c.asciiKey(i+3, "community"); !ok {
			return
		}
	} else if !c.usm(&h.TrapHost, i+2) {
		return
	}
	for _, o := range p.d.g.hosts {
		if o.Addr == h.Addr {
			h.Community.Zero()
			h.AuthPassword.Zero()
			h.PrivPassword.Zero()
			c.errf("trap receiver %s is already set on line %d", h.Addr, o.line)
			return
		}
	}
	p.d.g.hosts = append(p.d.g.hosts, h)
}

// usm parses "user NAME [auth PROTO PASSWORD [priv PROTO PASSWORD]]" from
// argument i on.
func (c *cmdCtx) usm(h *TrapHost, i int) bool {
	n := len(c.args) - i
	if n != 2 && n != 5 && n != 8 {
		c.errf("version 3 takes user NAME [auth md5|sha|sha256 PASSWORD [priv des|aes PASSWORD]]")
		return false
	}
	if _, ok := c.keyword(i, "user"); !ok {
		return false
	}
	user, ok := c.name(i+1, "user name")
	if !ok {
		return false
	}
	h.User = user
	if n >= 5 {
		if h.AuthProtocol, h.AuthPassword, ok = c.usmSecret(i+2, "auth", "md5", "sha", "sha256"); !ok {
			return false
		}
	}
	if n == 8 {
		if h.PrivProtocol, h.PrivPassword, ok = c.usmSecret(i+5, "priv", "des", "aes"); !ok {
			h.AuthPassword.Zero()
			return false
		}
	}
	return true
}

// usmSecret parses "auth|priv PROTOCOL PASSWORD" at argument i.
func (c *cmdCtx) usmSecret(i int, kw string, protocols ...string) (string, ipsec.Key, bool) {
	if _, ok := c.keyword(i, kw); !ok {
		return "", nil, false
	}
	proto, ok := c.keyword(i+1, protocols...)
	if !ok {
		return "", nil, false
	}
	if len(c.args[i+2]) < minUSMPassword {
		c.errf("the %s password must have at least %d characters (RFC 3414 §11.2)", kw, minUSMPassword)
		return "", nil, false
	}
	k, _ := c.asciiKey(i+2, kw+" password")
	return proto, k, true
}

func (p *parser) cmdSNMPEngineID(c *cmdCtx) {
	k, ok := c.hexKey(0, "engine-id")
	if !ok {
		return
	}
	// RFC 3411 §5: SnmpEngineID is 5 to 32 octets.
	if len(k) < 5 || len(k) > 32 {
		c.errf("engine-id is %d bytes; expected 5 to 32 (RFC 3411 §5)", len(k))
		return
	}
	p.d.g.engineID = []byte(k)
}

func (p *parser) cmdSNMPTraps(c *cmdCtx) {
	if len(c.args) == 0 {
		p.d.g.traps.put(AllTraps(), c.line)
		return
	}
	var traps []Trap
	names := make([]string, 0, len(AllTraps()))
	for _, t := range AllTraps() {
		names = append(names, string(t))
	}
	for i := range c.args {
		k, ok := c.keyword(i, names...)
		if !ok {
			return
		}
		if slices.Contains(traps, Trap(k)) {
			c.errf("trap %s is listed twice", k)
			return
		}
		traps = append(traps, Trap(k))
	}
	// Keep the order of AllTraps.
	var ordered []Trap
	for _, t := range AllTraps() {
		if slices.Contains(traps, t) {
			ordered = append(ordered, t)
		}
	}
	p.d.g.traps.put(ordered, c.line)
}
