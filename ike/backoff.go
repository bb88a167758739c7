package ike

import (
	"fmt"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// Backoff is how long this end waits before it negotiates a selector pair
// of a tunnel again after negotiations of it failed (an acquire's, or a
// child SA's rekey): Initial after the first failure, twice as long after
// each further one, never more than Maximum. A success starts over. Zero
// fields take DefaultBackoff's.
type Backoff struct {
	Initial, Maximum time.Duration
}

// DefaultBackoff is the back-off when none is configured: a second, up to
// 30 s (the kernel's larval SA holds strongSwan's acquires for 30 s, so a
// peer refused by charon sees charon try about as often).
var DefaultBackoff = Backoff{Initial: ipsec.DefaultBackoffInitial, Maximum: ipsec.DefaultBackoffMaximum}

// Or returns b with each zero field taken from DefaultBackoff.
func (b Backoff) Or() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Maximum <= 0 {
		b.Maximum = max(DefaultBackoff.Maximum, b.Initial)
	}
	return b
}

// Validate checks that the fields are not negative and that Maximum, when
// set, is at least Initial.
func (b Backoff) Validate() error {
	if b.Initial < 0 || b.Maximum < 0 || b.Maximum > 0 && b.Maximum < b.Initial {
		return fmt.Errorf("back-off %v up to %v: the maximum must be at least the initial wait", b.Initial, b.Maximum)
	}
	return nil
}

// Delay returns the wait after n consecutive failures, n ≥ 1.
func (b Backoff) Delay(n int) time.Duration {
	b = b.Or()
	d := b.Initial
	for i := 1; i < n && d < b.Maximum; i++ {
		d *= 2
	}
	return min(d, b.Maximum)
}

// Retry is what a daemon keeps of one selector pair's negotiations: how
// many this end started and how many failed, why the last one failed, and
// when the next may start. The zero value is a pair not negotiated yet. It
// is not safe for concurrent use (the daemon's lock guards it).
type Retry struct {
	Attempts, Failures int
	// Consecutive counts the failures since the last success.
	Consecutive int
	LastError   string
	// Next is the earliest time of the next attempt.
	Next time.Time
}

// Due reports whether an attempt may start at now.
func (r *Retry) Due(now time.Time) bool { return !now.Before(r.Next) }

// Start notes an attempt.
func (r *Retry) Start() { r.Attempts++ }

// Fail notes a failure at now and puts the next attempt off by b. It
// reports whether the pair's state changed, which is worth a log line and
// a trap: the first failure since a success, or a failure for another
// reason than the last one's.
func (r *Retry) Fail(now time.Time, reason string, b Backoff) bool {
	changed := r.Consecutive == 0 || reason != r.LastError
	r.Failures++
	r.Consecutive++
	r.LastError = reason
	r.Next = now.Add(b.Delay(r.Consecutive))
	return changed
}

// Succeed notes a success; it reports whether the pair was failing.
func (r *Retry) Succeed() bool {
	was := r.Consecutive > 0
	r.Consecutive, r.LastError, r.Next = 0, "", time.Time{}
	return was
}

// Failing reports whether the last attempt failed.
func (r *Retry) Failing() bool { return r.Consecutive > 0 }
