package v2

import (
	"net/netip"
	"time"
)

// INVALID_IKE_SPI (RFC 7296 §2.21.4): a request outside IKE_SA_INIT for an
// IKE SA this end does not know — most likely one it lost in a restart —
// is answered, "to the IP address and port from where it came with the
// same IKE SPIs and the Message ID copied", unprotected, with an
// INVALID_IKE_SPI notify, so that the peer need not wait for its
// retransmissions to give up. A response is never answered. Answers are
// rate-limited (a flood of forged SPIs must not make this end a
// reflector): invalidSPIBurst at once, invalidSPIRate a second after.
// A peer's INVALID_IKE_SPI, which no IKE SA can authenticate, changes
// nothing ("MUST NOT change the state of any existing SAs"): it is
// counted and dropped like any message that does not open.

const (
	invalidSPIBurst = 10
	invalidSPIRate  = 10 // a second
)

// rateLimit is a token bucket on the daemon's clock. Guarded by
// Daemon.mu; the zero value is full at first use.
type rateLimit struct {
	tokens float64
	last   time.Time
	primed bool
}

// allow takes a token if there is one.
func (r *rateLimit) allow(now time.Time, burst, perSecond float64) bool {
	if !r.primed {
		r.tokens, r.last, r.primed = burst, now, true
	}
	if el := now.Sub(r.last); el > 0 {
		r.tokens = min(burst, r.tokens+el.Seconds()*perSecond)
		r.last = now
	}
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

// invalidIKESPI answers a request for an unknown IKE SA.
func (d *Daemon) invalidIKESPI(local, remote netip.AddrPort, m *Message) {
	d.mu.Lock()
	if m.IsResponse() || d.closed {
		d.mu.Unlock()
		return
	}
	ok := d.spiLimit.allow(d.clk.Now(), invalidSPIBurst, invalidSPIRate)
	if ok {
		d.counters.InvalidIKESPISent++
	} else {
		d.counters.InvalidIKESPILimited++
	}
	d.mu.Unlock()
	if !ok {
		return
	}
	h := Header{SPIi: m.SPIi, SPIr: m.SPIr, Version: Version, Exchange: Informational,
		MessageID: m.MessageID, Flags: FlagResponse}
	if m.Flags&FlagInitiator == 0 {
		h.Flags |= FlagInitiator // this end would be the original initiator
	}
	resp := (&Message{Header: h, Payloads: []Payload{notifyPayload(InvalidIKESPI, nil)}}).Marshal()
	d.log.Debug("INVALID_IKE_SPI", "remote", remote, "spi_i", hexSPI64(m.SPIi), "spi_r", hexSPI64(m.SPIr))
	if err := d.tr.Send(local, remote, resp); err != nil {
		d.log.Warn("send failed", "remote", remote, "err", err)
	}
}

func hexSPI64(spi uint64) string { return hexSPI(uint32(spi>>32)) + hexSPI(uint32(spi))[2:] }
