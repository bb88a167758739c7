package v1

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"time"

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
	in       chan packet
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
	ex := &exchange{d: d, sa: sa, msgID: msgID, in: make(chan packet, 8), ctx: ctx, cancel: cancel}
	sa.exchanges[msgID] = ex
	return ex
}

// done unregisters the exchange; if it answered a message last, the
// answer is remembered for retransmissions of that message.
func (ex *exchange) done(answered []byte) {
	d := ex.d
	d.mu.Lock()
	if ex.sa.exchanges[ex.msgID] == ex {
		delete(ex.sa.exchanges, ex.msgID)
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

// sendTo sends a message on the SA's current endpoints.
func (d *Daemon) sendTo(sa *ikeSA, msg []byte) {
	d.mu.Lock()
	local, remote := sa.local, sa.remote
	d.mu.Unlock()
	if err := d.tr.Send(local, remote, msg); err != nil {
		d.log.Warn("send failed", "local", local, "remote", remote, "err", err)
	}
}

// read waits for the next message of the exchange. It resends the last
// message on each timeout, with exponential backoff, and answers a
// duplicate of the previous message with the last message again. With
// retransmit false it only waits (a responder that has nothing to resend
// yet).
func (ex *exchange) read(retransmit bool) (packet, error) {
	d := ex.d
	d.mu.Lock()
	r := d.cfg.retrans
	d.mu.Unlock()
	timeout := r.Timeout
	tries := 0
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case p := <-ex.in:
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
		case <-timer.C:
			if !retransmit || ex.last == nil || tries >= r.Tries {
				return packet{}, errTimeout
			}
			tries++
			d.count(func(c *ike.Counters) { c.Retransmits++ })
			d.sendTo(ex.sa, ex.last)
			timeout = time.Duration(float64(timeout) * r.Base)
			timer.Reset(timeout)
		case <-ex.ctx.Done():
			d.mu.Lock()
			err := ex.abortErr
			d.mu.Unlock()
			if err != nil {
				return packet{}, err
			}
			return packet{}, fmt.Errorf("v1: exchange canceled: %w", ex.ctx.Err())
		}
	}
}

// deliver queues a received message for the exchange without blocking.
// Daemon.mu must be held.
func (ex *exchange) deliver(p packet) bool {
	select {
	case ex.in <- p:
		return true
	default:
		return false
	}
}

// header returns header fields for a message of the exchange.
func (ex *exchange) header(t ExchangeType) HeaderFields {
	return HeaderFields{ICookie: ex.sa.icookie, RCookie: ex.sa.rcookie, Exchange: t, MessageID: ex.msgID}
}

// sealed builds, encrypts and returns a message of the exchange, advancing
// the exchange's CBC state. For phase 1 messages the state is the SA's.
func (ex *exchange) sealed(t ExchangeType, ps []outPayload) []byte {
	plain := encodeMessage(ex.header(t), ps)
	d := ex.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if ex.msgID == 0 {
		out, next := encryptMessage(ex.sa.block, ex.sa.p1IV, plain)
		ex.sa.p1IV = next
		return out
	}
	out, next := encryptMessage(ex.sa.block, ex.iv, plain)
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
	block, iv := ex.sa.block, ex.iv
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
