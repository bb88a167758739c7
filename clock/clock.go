// Package clock is time as ISM's control plane sees it: Now and AfterFunc,
// given to IKE, dead peer detection, failover and the gateway's own timers,
// as crypto/tls takes Config.Time. Production code uses Real; tests of
// timer logic use clocktest.Fake and run in milliseconds. Tests that
// measure a real peer's timing stay on Real.
package clock

import "time"

// Clock tells the time and runs functions later. Implementations are safe
// for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f, on a goroutine of its own or the clock's, once d
	// has passed, unless the timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call made by AfterFunc, as time.Timer is for
// time.AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not run; it reports whether it
	// stopped it.
	Stop() bool
	// Reset schedules the call d from now; it reports whether the timer
	// had been pending.
	Reset(d time.Duration) bool
}

// Real is the system clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Or returns c, or Real when c is nil: the zero value of a config field.
func Or(c Clock) Clock {
	if c == nil {
		return Real
	}
	return c
}
