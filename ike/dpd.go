package ike

import (
	"time"

	"github.com/ismgw/ism/ipsec"
)

// TunnelDPD returns the DPD settings in force for a tunnel: its own when
// it has some, the global ones otherwise, defaults filled in.
func (c *Config) TunnelDPD(t *Tunnel) ipsec.DPD {
	if t.DPD == nil {
		return c.DPD.Resolve(ipsec.DPD{})
	}
	return t.DPD.Resolve(c.DPD)
}

// HoldDown returns a tunnel's failover hold-down: its own, else the
// global one, else DefaultFailoverHoldDown; zero when a negative value
// switched it off.
func (c *Config) HoldDown(t *Tunnel) time.Duration {
	h := t.FailoverHoldDown
	if h == 0 {
		h = c.FailoverHoldDown
	}
	switch {
	case h == 0:
		return ipsec.DefaultFailoverHoldDown
	case h < 0:
		return 0
	}
	return h
}
