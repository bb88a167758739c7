package v1

import (
	"time"

	"github.com/ismgw/ism/clock"
)

// lifeTimer runs an SA's two lifetime events, the soft one (rekey) and
// then the hard one (expiry), on one timer at a time: the soft event arms
// the hard one. With an IKE SA and a child SA a tunnel, two timers fewer
// each. Daemon.mu guards it; the zero value is unarmed.
type lifeTimer struct {
	t       clock.Timer
	stopped bool
}

// armLifeLocked schedules soft after softIn and hard after hardIn, both
// from now; a soft event due at or after the hard one is left out.
// Daemon.mu must be held.
func (d *Daemon) armLifeLocked(l *lifeTimer, softIn, hardIn time.Duration, soft, hard func()) {
	if softIn >= hardIn {
		l.t = d.clk.AfterFunc(hardIn, hard)
		return
	}
	hardAt := d.now().Add(hardIn)
	l.t = d.clk.AfterFunc(softIn, func() {
		d.mu.Lock()
		stopped := l.stopped
		if !stopped {
			l.t = d.clk.AfterFunc(max(0, hardAt.Sub(d.now())), hard)
		}
		d.mu.Unlock()
		if !stopped {
			soft()
		}
	})
}

// stop cancels the events not yet run. Daemon.mu must be held.
func (l *lifeTimer) stop() {
	l.stopped = true
	if l.t != nil {
		l.t.Stop()
	}
}
