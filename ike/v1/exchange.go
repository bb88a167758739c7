package v1

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"

	"github.com/ismgw/ism/ike"
)

// packet is a received datagram.
type packet struct {
	local, remote netip.AddrPort
	data          []byte
}

// exchange is the state one exchange shares with the dispatcher: the
// queue its messages arrive on and what it last sent. It is created when
// the exchange starts and discarded when it ends.
type exchange struct {
	d        *Daemon
	sa       *ikeSA
	msgID    uint32
	in       []packet      // received, not yet read; guarded by Daemon.mu
	wake     chan struct{} // nudges a waiting read (capacity 1)
	timeout  uint64        // the read whose timer went off (see read); guarded by Daemon.mu
	reads    uint64        // reads started; guarded by Daemon.mu
	ctx      context.Context
	cancel   context.CancelFunc
	last     []byte   // the last message sent, for retransmits
	lastIn   [32]byte // hash of the last message received, to spot duplicates
	iv       []byte   // CBC state of a quick mode or informational exchange
	abortErr error    // why the exchange was aborted from outside; guarded by Daemon.mu
	spi      uint32   // the inbound SPI a quick mode initiator proposed
}

// abort ends the exchange from outside (an error notify, a delete).
// Daemon.mu must be held.
func (ex *exchange) abort(err error) {
	if ex.abortErr == nil {
		ex.abortErr = err
	}
	ex.cancel()
}

// errTimeout: the peer did not answer after every retransmission.
var errTimeout = errors.New("v1: peer did not answer (retransmissions exhausted)")

// newExchange registers an exchange for msgID on sa.
func (d *Daemon) newExchange(sa *ikeSA, msgID uint32) *exchange {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.newExchangeLocked(sa, msgID)
}

// newExchangeLocked is newExchange with Daemon.mu held.
func (d *Daemon) newExchangeLocked(sa *ikeSA, msgID uint32) *exchange {
	ctx, cancel := context.WithCancel(d.ctx)
	ex := &exchange{d: d, sa: sa, msgID: msgID, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
	if sa.dead {
		cancel() // removeIKESA canceled the SA's exchanges; this one came after
	}
	if sa.exchanges == nil {
		sa.exchanges = map[uint32]*exchange{}
	}
	sa.exchanges[msgID] = ex
	return ex
}

// done unregisters the exchange and, for a quick mode, records its end;
// if it answered a message last, the answer is remembered for
// retransmissions of that message.
func (ex *exchange) done(answered []byte) {
	d := ex.d
	d.mu.Lock()
	if ex.sa.exchanges[ex.msgID] == ex {
		delete(ex.sa.exchanges, ex.msgID)
		if len(ex.sa.exchanges) == 0 {
			ex.sa.exchanges = nil // an idle IKE SA keeps no map
		}
	}
	if ex.msgID != 0 {
		ex.sa.endQuickMode(ex.msgID)
	}
	if answered != nil && ex.last != nil {
		ex.sa.remember(ex.msgID, answered, ex.last)
	}
	d.mu.Unlock()
	ex.cancel()
}

// send sends msg to the peer and keeps it for retransmission.
func (ex *exchange) send(msg []byte) {
	ex.last = msg
	ex.d.sendTo(ex.sa, msg)
}

// sendTo sends a message on the SA's current endpoints; an empty one (a
// message sealed for an SA removed meanwhile, whose keys are gone) is not
// sent.
func (d *Daemon) sendTo(sa *ikeSA, msg []byte) {
	if len(msg) == 0 {
		return
	}
	d.mu.Lock()
	local, remote := sa.local, sa.remote
	d.mu.Unlock()
	if err := d.tr.Send(local, remote, msg); err != nil {
		d.log.Warn("send failed", "local", local, "remote", remote, "err", err)
	}
}

// maxQueued bounds the messages waiting for an exchange to read them.
const maxQueued = 8

// read waits for the next message of the exchange. It resends the last
// message on each timeout of the daemon's clock, with exponential backoff,
// and answers a duplicate of the previous message with the last message
// again. With retransmit false it only waits (a responder that has
// nothing to resend yet).
//
// Everything that wakes it (a message, the timer, a cancellation) is
// state under Daemon.mu that it consumes under the same lock, so that
// Daemon.quiet can tell a waiting exchange from one about to run.
func (ex *exchange) read(retransmit bool) (packet, error) {
	d := ex.d
	d.mu.Lock()
	r := d.cfg.retrans
	ex.reads++
	read := ex.reads
	d.mu.Unlock()
	timeout := r.Timeout
	tries := 0
	timer := d.clk.AfterFunc(timeout, func() {
		d.mu.Lock()
		if ex.reads == read {
			ex.timeout = read
			ex.nudge()
		}
		d.mu.Unlock()
	})
	defer timer.Stop()
	for {
		d.mu.Lock()
		if d.waiting[ex] {
			delete(d.waiting, ex)
			d.busy++
		}
		switch {
		case ex.ctx.Err() != nil:
			err := ex.abortErr
			d.mu.Unlock()
			if err != nil {
				return packet{}, err
			}
			return packet{}, fmt.Errorf("v1: exchange canceled: %w", ex.ctx.Err())
		case len(ex.in) > 0:
			p := ex.in[0]
			ex.in[0] = packet{}
			ex.in = ex.in[1:]
			d.mu.Unlock()
			sum := sha256.Sum256(p.data)
			if sum == ex.lastIn {
				d.count(func(c *ike.Counters) { c.Duplicates++ })
				if ex.last != nil {
					d.sendTo(ex.sa, ex.last)
				}
				continue
			}
			ex.lastIn = sum
			return p, nil
		case ex.timeout == read:
			ex.timeout = 0
			d.mu.Unlock()
			if !retransmit || ex.last == nil || tries >= r.Tries {
				return packet{}, errTimeout
			}
			tries++
			d.count(func(c *ike.Counters) { c.Retransmits++ })
			d.sendTo(ex.sa, ex.last)
			timeout = r.Next(timeout)
			timer.Reset(timeout)
		default:
			d.waiting[ex] = true
			d.busy--
			d.mu.Unlock()
			select {
			case <-ex.wake:
			case <-ex.ctx.Done():
			}
		}
	}
}

// pendingLocked reports whether something waits for the exchange's read.
// Daemon.mu must be held.
func (ex *exchange) pendingLocked() bool {
	return len(ex.in) > 0 || (ex.timeout != 0 && ex.timeout == ex.reads) || ex.ctx.Err() != nil
}

// nudge wakes a waiting read. Daemon.mu must be held.
func (ex *exchange) nudge() {
	select {
	case ex.wake <- struct{}{}:
	default:
	}
}

// deliver queues a received message for the exchange without blocking.
// Daemon.mu must be held.
func (ex *exchange) deliver(p packet) bool {
	if len(ex.in) >= maxQueued {
		return false
	}
	ex.in = append(ex.in, p)
	ex.nudge()
	return true
}

// header returns header fields for a message of the exchange.
func (ex *exchange) header(t ExchangeType) HeaderFields {
	return HeaderFields{ICookie: ex.sa.icookie, RCookie: ex.sa.rcookie, Exchange: t, MessageID: ex.msgID}
}

// sealed builds, encrypts and returns a message of the exchange, advancing
// the exchange's CBC state. For phase 1 messages the state is the SA's.
// It returns nil when the SA was removed meanwhile (removeIKESA zeroes its
// keys and cancels the exchange).
func (ex *exchange) sealed(t ExchangeType, ps []outPayload) []byte {
	plain := encodeMessage(ex.header(t), ps)
	d := ex.d
	d.mu.Lock()
	defer d.mu.Unlock()
	b := ex.sa.blockLocked()
	if b == nil {
		return nil
	}
	if ex.msgID == 0 {
		out, next := encryptMessage(b, ex.sa.p1IV, plain)
		ex.sa.p1IV = next
		return out
	}
	out, next := encryptMessage(b, ex.iv, plain)
	ex.iv = next
	return out
}

// open decrypts and parses a received message of the exchange. The CBC
// state advances only if it parses.
func (ex *exchange) open(p packet) (*Message, error) {
	h := Header(p.data)
	if h.Flags()&FlagEncryption == 0 {
		return nil, fmt.Errorf("v1: %v message is not encrypted", h.Exchange())
	}
	d := ex.d
	d.mu.Lock()
	block, iv := ex.sa.blockLocked(), ex.iv
	if ex.msgID == 0 {
		iv = ex.sa.p1IV
	}
	d.mu.Unlock()
	if block == nil {
		return nil, errors.New("v1: no keys to decrypt with")
	}
	m, next, err := parseEncrypted(block, iv, p.data)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if ex.msgID == 0 {
		ex.sa.p1IV = next
	} else {
		ex.iv = next
	}
	d.mu.Unlock()
	return m, nil
}

// unexpectedError reports a message that lacks a payload the exchange
// needs.
func unexpectedError(want PayloadType, m *Message) error {
	return fmt.Errorf("%w: %v message without a %v payload (has %v)", ErrMalformed, m.Header.Exchange, want, m.Types())
}

// notifyError is an error notification received from the peer.
type notifyError struct{ t NotifyType }

func (e notifyError) Error() string { return fmt.Sprintf("v1: peer sent %v", e.t) }

// peerError returns the error notify in m, if any.
func peerError(m *Message) error {
	for _, p := range m.All(PayloadNotify) {
		if n, err := ParseNotify(p.Body); err == nil && n.Type.IsError() {
			return notifyError{n.Type}
		}
	}
	return nil
}
