package ipsec

import (
	"errors"
	"time"
)

// DPD configures dead peer detection (RFC 3706) as the seed runs it, on
// traffic rather than on a fixed heartbeat: an inquiry when traffic was sent
// to the peer within Sent but nothing came back from it within Silent, or
// when there was no traffic either way for Idle. An unanswered inquiry is
// repeated every RetryInterval, Retries times; when the last one is
// unanswered too, the peer is declared dead. IKEv1 sends R-U-THERE
// (RFC 3706), IKEv2 an empty INFORMATIONAL (RFC 7296 §1.4).
//
// The zero value is DPD off. A zero timer or count takes the global
// setting, then the default (Resolve).
type DPD struct {
	Enabled       bool
	Sent          time.Duration
	Silent        time.Duration
	Idle          time.Duration
	RetryInterval time.Duration
	Retries       int
}

// DPD and failover defaults: the seed's three timers; the retry policy and
// the hold-down are those of the configuration language.
const (
	DefaultDPDSent          = 30 * time.Second
	DefaultDPDSilent        = 60 * time.Second
	DefaultDPDIdle          = 150 * time.Second
	DefaultDPDRetryInterval = 5 * time.Second
	DefaultDPDRetries       = 3
	DefaultFailoverHoldDown = 60 * time.Second
	// DefaultBackoffInitial and DefaultBackoffMaximum are the wait
	// before a failed negotiation of a tunnel's selector pair is tried
	// again, and the most it doubles to ("ipsec negotiation back-off").
	DefaultBackoffInitial = time.Second
	DefaultBackoffMaximum = 30 * time.Second
)

// Resolve returns the settings in force: d's, with each zero timer or count
// taken from base, then from the defaults. Enabled is d's.
func (d DPD) Resolve(base DPD) DPD {
	pick := func(v, b, def time.Duration) time.Duration {
		switch {
		case v > 0:
			return v
		case b > 0:
			return b
		}
		return def
	}
	out := DPD{Enabled: d.Enabled,
		Sent:          pick(d.Sent, base.Sent, DefaultDPDSent),
		Silent:        pick(d.Silent, base.Silent, DefaultDPDSilent),
		Idle:          pick(d.Idle, base.Idle, DefaultDPDIdle),
		RetryInterval: pick(d.RetryInterval, base.RetryInterval, DefaultDPDRetryInterval),
		Retries:       d.Retries,
	}
	if out.Retries <= 0 {
		out.Retries = base.Retries
	}
	if out.Retries <= 0 {
		out.Retries = DefaultDPDRetries
	}
	return out
}

// Validate refuses negative timers and counts.
func (d DPD) Validate() error {
	if d.Sent < 0 || d.Silent < 0 || d.Idle < 0 || d.RetryInterval < 0 || d.Retries < 0 {
		return errors.New("negative DPD timer or retry count")
	}
	return nil
}
