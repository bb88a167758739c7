package config

// The global IKE settings: the IKE version of tunnels that do not say,
// and IKEv2's fragmentation (RFC 7383) and cookies (RFC 7296 §2.6).

// MinFragmentMTU is the smallest "ipsec ike fragmentation mtu": below it
// an IKE fragment would carry little but headers (ike.MinFragmentMTU).
const MinFragmentMTU = 256

// MaxCookieThreshold is the largest "ipsec ike cookie-threshold".
const MaxCookieThreshold = 1000000

func (p *parser) cmdIPsecIKEVersion(c *cmdCtx) {
	if n, ok := c.number(0, "IKE version", 1, 2); ok {
		p.d.g.ikeVersion.put(int(n), c.line)
	}
}

// cmdIKEFragmentation: "ipsec ike fragmentation mtu BYTES|off".
func (p *parser) cmdIKEFragmentation(c *cmdCtx) {
	k, ok := c.keyword(0, "mtu", "off")
	switch {
	case !ok:
	case k == "off" && len(c.args) == 1:
		p.d.g.fragMTU.put(-1, c.line)
	case k == "off":
		c.errf("off takes no argument")
	case len(c.args) != 2:
		c.errf("expected mtu BYTES")
	default:
		if n, ok := c.number(1, "mtu", MinFragmentMTU, 65535); ok {
			p.d.g.fragMTU.put(int(n), c.line)
		}
	}
}

func (p *parser) cmdCookieThreshold(c *cmdCtx) {
	if n, ok := c.number(0, "half-open IKE SAs", 0, MaxCookieThreshold); ok {
		p.d.g.cookies.put(int(n), c.line)
	}
}
