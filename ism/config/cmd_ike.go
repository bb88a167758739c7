package config

// The global IKE settings: the IKE version of tunnels that do not say,
// IKEv2's fragmentation (RFC 7383) and cookies (RFC 7296 §2.6), and the
// retransmission schedule of both versions.

import (
	"strconv"
	"time"
)

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

// Retransmit is the retransmission schedule of IKE requests ("ipsec ike
// retransmit"), for both IKE versions: an unanswered request is sent again
// Timeout after it was sent, each next wait Base times the one before but
// at most Cap (0: no cap), Count times; one wait after the last resend the
// negotiation fails (and a tunnel with a backup destination fails over).
// The zero value is not the default: Parse fills in DefaultRetransmit.
type Retransmit struct {
	Count   int
	Timeout time.Duration
	Base    float64
	Cap     time.Duration
}

// DefaultRetransmit is the schedule without "ipsec ike retransmit":
// resends after 2, 3.6, 6.5, 11.7 and 21 s, failure 37.8 s later.
var DefaultRetransmit = Retransmit{Count: 5, Timeout: 2 * time.Second, Base: 1.8}

// MaxRetransmitCount is the largest "ipsec ike retransmit count".
const MaxRetransmitCount = 20

// GiveUp returns the time from a request's first sending to the
// negotiation's failure when nothing answers.
func (r Retransmit) GiveUp() time.Duration {
	var total time.Duration
	wait := r.Timeout
	for i := 0; i <= r.Count; i++ {
		total += wait
		wait = time.Duration(float64(wait) * r.Base)
		if r.Cap > 0 && wait > r.Cap {
			wait = r.Cap
		}
	}
	return total
}

// cmdIKERetransmit: "ipsec ike retransmit [count N] [timeout MS] [base
// FACTOR] [cap MS]"; what it leaves out keeps its default.
func (p *parser) cmdIKERetransmit(c *cmdCtx) {
	idx, ok := c.pairs(0, false, "count", "timeout", "base", "cap")
	if !ok {
		return
	}
	r := DefaultRetransmit
	if i, has := idx["count"]; has {
		n, ok := c.number(i, "count", 0, MaxRetransmitCount)
		if !ok {
			return
		}
		r.Count = int(n)
	}
	if i, has := idx["timeout"]; has {
		n, ok := c.number(i, "timeout", 100, 60000)
		if !ok {
			return
		}
		r.Timeout = time.Duration(n) * time.Millisecond
	}
	if i, has := idx["base"]; has {
		f, err := strconv.ParseFloat(c.arg(i), 64)
		if err != nil || !(f >= 1 && f <= 4) {
			c.errf("base %q: expected a factor from 1 to 4, such as 1.5", c.arg(i))
			return
		}
		r.Base = f
	}
	if i, has := idx["cap"]; has {
		n, ok := c.number(i, "cap", 100, 3600000)
		if !ok {
			return
		}
		r.Cap = time.Duration(n) * time.Millisecond
		if r.Cap < r.Timeout {
			c.errf("cap %d ms is shorter than the first wait (timeout %d ms)", n, r.Timeout.Milliseconds())
			return
		}
	}
	p.d.g.retransmit.put(r, c.line)
}
