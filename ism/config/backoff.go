package config

import (
	"time"

	"github.com/ismgw/ism/ipsec"
)

// Backoff is how long the gateway waits before it negotiates a tunnel's
// selector pair again after negotiations of it failed: Initial after the
// first failure, doubling after each further one up to Maximum.
type Backoff struct {
	Initial, Maximum time.Duration
}

// The bounds of "ipsec negotiation back-off".
const (
	maxBackoffInitial = 3600
	maxBackoffMaximum = 86400
)

// backoffDraft is "ipsec negotiation back-off".
type backoffDraft struct {
	initial, maximum opt[time.Duration]
	line             int
}

// cmdIPsecBackoff parses "[initial SECONDS] [maximum SECONDS]".
func (p *parser) cmdIPsecBackoff(c *cmdCtx) {
	idx, ok := c.pairs(0, false, "initial", "maximum")
	if !ok {
		return
	}
	b := &p.d.g.backoff
	b.line = c.line
	if i, has := idx["initial"]; has {
		if v, ok := c.seconds(i, "initial", 1, maxBackoffInitial); ok {
			b.initial.put(v, c.line)
		}
	}
	if i, has := idx["maximum"]; has {
		if v, ok := c.seconds(i, "maximum", 1, maxBackoffMaximum); ok {
			b.maximum.put(v, c.line)
		}
	}
}

// resolveBackoff fills in the defaults; a maximum below the initial wait
// is an error of the command's line.
func (p *parser) resolveBackoff() Backoff {
	d := p.d.g.backoff
	b := Backoff{Initial: d.initial.or(ipsec.DefaultBackoffInitial), Maximum: d.maximum.or(ipsec.DefaultBackoffMaximum)}
	if !d.maximum.ok() && b.Maximum < b.Initial {
		b.Maximum = b.Initial
	}
	if b.Maximum < b.Initial {
		p.errs.add(d.line, "ipsec negotiation back-off: maximum %v is below the initial wait %v", b.Maximum, b.Initial)
	}
	return b
}
