package v1

import (
	"crypto/sha256"
	"net/netip"

	"github.com/ismgw/ism/ike"
)

// maxPending bounds the messages kept for an IKE SA whose phase 1 is not
// complete (a quick mode sent right after aggressive mode's last message).
const maxPending = 4

// maxHalfOpen bounds the phase 1 negotiations peers may have open at once.
const maxHalfOpen = 20000

// stopOpeningLocked takes a responder out of the half-open count once its
// phase 1 is complete or it goes. Daemon.mu must be held.
func (d *Daemon) stopOpeningLocked(sa *ikeSA) {
	if sa.opening {
		sa.opening = false
		d.opening--
	}
}

// Receive handles one IKE datagram. It parses only the header, finds the
// IKE SA and exchange the message belongs to and queues it there, or
// starts a responder exchange. Bad input is counted and dropped.
func (d *Daemon) Receive(local, remote netip.AddrPort, msg []byte) {
	d.count(func(c *ike.Counters) { c.Received++ })
	if len(msg) == 1 && msg[0] == 0xff {
		return // NAT-T keepalive (RFC 3948 §2.3)
	}
	h := Header(msg)
	if len(msg) > MaxMessageSize || !h.IsValid() || h.Version()>>4 != 1 {
		d.count(func(c *ike.Counters) { c.Malformed++ })
		return
	}
	p := packet{local: local, remote: remote, data: append([]byte(nil), msg...)}
	d.mu.Lock()
	var after func()
	if !d.closed {
		if h.RCookie().IsZero() {
			after = d.receiveNew(h, p)
		} else {
			after = d.receiveKnown(h, p)
		}
	}
	d.mu.Unlock()
	if after != nil {
		after()
	}
}

// resend returns a function that sends msg again on sa's endpoints.
// Daemon.mu must be held.
func (d *Daemon) resend(sa *ikeSA, msg []byte) func() {
	d.counters.Duplicates++
	local, remote := sa.local, sa.remote
	return func() { _ = d.tr.Send(local, remote, msg) }
}

// receiveKnown handles a message for an existing IKE SA. Daemon.mu must be
// held; the returned function, if any, runs after it is released.
func (d *Daemon) receiveKnown(h Header, p packet) func() {
	remote := p.remote
	sa := d.sas[saKey{h.ICookie(), h.RCookie()}]
	if sa == nil {
		// The responder's first answer names its cookie for the first time.
		if ho := d.halfOpen[h.ICookie()]; ho != nil && ho.remote.Addr() == remote.Addr() && h.MessageID() == 0 {
			delete(d.halfOpen, ho.icookie)
			ho.rcookie = h.RCookie()
			d.putSALocked(ho)
			sa = ho
		}
	}
	if sa == nil || sa.dead {
		d.counters.UnknownSA++
		return nil
	}
	sa.lastRecv = d.now()
	if ex := sa.exchanges[h.MessageID()]; ex != nil {
		if !ex.deliver(p) {
			d.counters.Dropped++
		}
		return nil
	}
	if resp, ok := sa.answer(p.data); ok {
		return d.resend(sa, resp)
	}
	switch {
	case !sa.established && h.Exchange() == ExchangeInformational && h.Flags()&FlagEncryption == 0:
		// An error notify during phase 1 goes to the phase 1 exchange.
		if ex := sa.exchanges[0]; ex != nil && ex.deliver(p) {
			return nil
		}
		d.counters.Dropped++
	case h.MessageID() == 0:
		d.counters.Dropped++
	case h.Exchange() == ExchangeQuick && sa.quickModeEnded(h.MessageID()):
		// A late copy of an ended quick mode's message: decrypted as a
		// new one (a fresh IV), it would be refused as malformed.
		d.counters.Duplicates++
	case !sa.established:
		if q := sa.queue(); len(q.pending) < maxPending {
			q.pending = append(q.pending, p)
		} else {
			d.counters.Dropped++
		}
	case h.Exchange() == ExchangeQuick:
		ex := d.newExchangeLocked(sa, h.MessageID())
		ex.lastIn = sha256.Sum256(p.data)
		if !d.spawnLocked(func() { d.quickModeResponder(ex, p) }) {
			delete(sa.exchanges, ex.msgID)
		}
	case h.Exchange() == ExchangeInformational:
		// In order, on the caller's goroutine: a delete of the IKE SA
		// must not overtake the deletes sent before it.
		return func() { d.informational(sa, p) }
	default:
		d.counters.Dropped++
	}
	return nil
}

// receiveNew handles a message with no responder cookie: the first
// message of a phase 1 a peer initiates, or its retransmission. Daemon.mu
// must be held.
func (d *Daemon) receiveNew(h Header, p packet) func() {
	if h.MessageID() != 0 || h.Flags()&FlagEncryption != 0 ||
		(h.Exchange() != ExchangeMain && h.Exchange() != ExchangeAggressive) {
		d.counters.Dropped++
		return nil
	}
	key := respKey{h.ICookie(), p.remote.Addr()}
	if sa := d.inits[key]; sa != nil {
		if ex := sa.exchanges[0]; ex != nil {
			if !ex.deliver(p) {
				d.counters.Dropped++
			}
			return nil
		}
		if resp, ok := sa.answer(p.data); ok {
			return d.resend(sa, resp)
		}
		d.counters.Dropped++
		return nil
	}
	if d.opening >= d.maxOpening {
		d.counters.Dropped++
		return nil
	}
	mode := ike.MainMode
	if h.Exchange() == ExchangeAggressive {
		mode = ike.AggressiveMode
	}
	sa := d.newIKESA(false, mode, p.local, p.remote)
	sa.icookie = h.ICookie()
	d.putSALocked(sa)
	d.inits[key] = sa
	sa.opening = true
	d.opening++
	ex := d.newExchangeLocked(sa, 0)
	ex.lastIn = sha256.Sum256(p.data) // its retransmissions are duplicates
	run := func() { d.mainModeResponder(ex, p) }
	if mode == ike.AggressiveMode {
		run = func() { d.aggressiveResponder(ex, p) }
	}
	if !d.spawnLocked(run) {
		d.deleteSALocked(sa)
		delete(d.inits, key)
		d.stopOpeningLocked(sa)
	}
	return nil
}
