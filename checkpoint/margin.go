package checkpoint

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Margin defaults.
const (
	// DefaultPeriod is the checkpoint period.
	DefaultPeriod = time.Second
	// DefaultSafety multiplies what the observed rate says could have
	// been sent.
	DefaultSafety = 2.0
	// DefaultFloor is the smallest jump: a burst from idle to one
	// million packets a second for a whole default period, above what
	// one SA carries on the software data path, fits in it, and it costs
	// 1/4096 of a 32-bit sequence space per restart.
	DefaultFloor = 1 << 20
	// MaxESNMargin bounds the jump of an SA with extended sequence
	// numbers: its peer infers the high 32 bits from its window (RFC 4303
	// Appendix A2.2) and gets them right only while the sender is less
	// than 2^32 minus the window ahead of it; 2^31 leaves the peer 2^31
	// minus 2^16 packets lost at the crash before it would be confused.
	MaxESNMargin = 1 << 31
)

// ErrSeqExhausted says that a resumed outbound SA without ESN would have
// no sequence number left past its margin: it must be rekeyed (a signaled
// tunnel renegotiates; a manual one needs new SAs).
var ErrSeqExhausted = errors.New("checkpoint: sequence space exhausted past the margin")

// Policy is how far a resumed outbound SA jumps past its checkpoint: far
// enough to cover everything the old SA could have sent after the
// checkpoint was taken and before it stopped. The zero value takes the
// defaults. A Policy is a plain value.
type Policy struct {
	// Period is the checkpoint period and Latency the longest recent
	// write: the last checkpoint that reached the disk (or etcd) is at
	// most Period+Latency older than the crash.
	Period, Latency time.Duration
	// Extra is sending time beyond that: in a cluster, the fencing
	// deadline (an owner cut off from etcd sends for up to the lease
	// TTL after its last write could land).
	Extra time.Duration
	// Safety multiplies the rate (default DefaultSafety); Floor is the
	// smallest margin (default DefaultFloor).
	Safety float64
	Floor  uint64
}

// PolicyOf returns the policy of a state: its period and write latency.
func PolicyOf(s *State) Policy { return Policy{Period: s.Period, Latency: s.WriteLatency} }

// Window returns the sending time the margin covers.
func (p Policy) Window() time.Duration {
	period := p.Period
	if period <= 0 {
		period = DefaultPeriod
	}
	return period + max(p.Latency, 0) + max(p.Extra, 0)
}

// Margin is one computed jump with its reasons, for show detail.
type Margin struct {
	N      uint64        // the jump
	Rate   float64       // packets per second observed
	Window time.Duration // sending time covered
	Safety float64
	Floor  uint64
	Capped bool // ESN: held at MaxESNMargin
}

// Margin returns the jump for an SA seen at rate packets a second:
// rate × Window × Safety rounded up, and at least Floor.
func (p Policy) Margin(rate float64) Margin {
	m := Margin{Rate: max(rate, 0), Window: p.Window(), Safety: p.Safety, Floor: p.Floor}
	if m.Safety <= 0 {
		m.Safety = DefaultSafety
	}
	if m.Floor == 0 {
		m.Floor = DefaultFloor
	}
	n := math.Ceil(m.Rate * m.Window.Seconds() * m.Safety)
	m.N = m.Floor
	if n > float64(m.Floor) {
		m.N = math.MaxUint64
		if n < math.MaxUint64 {
			m.N = uint64(n)
		}
	}
	return m
}

// String says how the margin came about, e.g. "1048576 (floor; 1200 pps ×
// 1.01s × 2 = 2424)".
func (m Margin) String() string {
	calc := fmt.Sprintf("%.0f pps × %v × %g = %.0f", m.Rate, m.Window, m.Safety, math.Ceil(m.Rate*m.Window.Seconds()*m.Safety))
	switch {
	case m.Capped:
		return fmt.Sprintf("%d (ESN cap; %s)", m.N, calc)
	case m.N == m.Floor:
		return fmt.Sprintf("%d (floor; %s)", m.N, calc)
	}
	return fmt.Sprintf("%d (%s)", m.N, calc)
}

// ResumeAfter returns where an outbound SA recorded in sa resumes: the
// last number to count as used is sa.Seq plus the margin for its rate.
// With ESN the margin is held at MaxESNMargin; without, ErrSeqExhausted
// says that no number would be left.
func (p Policy) ResumeAfter(sa *SA) (after uint64, m Margin, err error) {
	m = p.Margin(sa.Rate)
	limit := uint64(math.MaxUint32)
	if sa.ESN {
		limit = math.MaxUint64
		if m.N > MaxESNMargin {
			m.N, m.Capped = MaxESNMargin, true
		}
	}
	if sa.Seq > limit || m.N >= limit-sa.Seq {
		return 0, m, fmt.Errorf("%w: SA %s at %d, margin %d", ErrSeqExhausted, sa.ID, sa.Seq, m.N)
	}
	return sa.Seq + m.N, m, nil
}
