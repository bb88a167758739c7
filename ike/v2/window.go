package v2

import (
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
)

// The message ID window of RFC 7296 §2.3, at its size of 1 each way: this
// end has at most one request outstanding, numbered in sequence from 0 and
// retransmitted on a timer until answered or given up (§2.1, §2.4); the
// peer's requests are taken in sequence, and the last response is kept to
// answer a retransmission of its request again without doing it twice.

// reqKind says what a request does, for the collision rules of §2.25.
type reqKind uint8

const (
	reqOther       reqKind = iota
	reqChild               // CREATE_CHILD_SA making or rekeying a child SA
	reqChildDelete         // INFORMATIONAL deleting child SAs
	reqIKERekey            // CREATE_CHILD_SA rekeying the IKE SA (§1.3.2)
	reqIKEDelete           // INFORMATIONAL deleting the IKE SA
)

// request is one request this end sends and its handlers. The handlers run
// with the SA's mutex held.
type request struct {
	exchange ExchangeType
	kind     reqKind
	// build returns the payloads when the request's turn comes; it may
	// fail (the request is then dropped and onTimeout is not called).
	build      func(sa *ikeSA) ([]Payload, error)
	onResponse func(sa *ikeSA, m *Message)
	onTimeout  func(sa *ikeSA)
	onDrop     func(sa *ikeSA, reason string) // the SA ended first, the request queued or outstanding; may be nil
	schedule   ike.Retransmit                 // zero: the configured one
	plain      bool                           // IKE_SA_INIT: not encrypted

	msgID   uint32
	hdr     Header
	ps      []Payload // as built, to fragment again smaller (§2.5.2 of RFC 7383)
	wire    [][]byte  // the datagrams: the message, or its fragments
	mtu     int       // the fragment size of wire; 0 when not fragmented
	tries   int
	timeout time.Duration
}

// window is an IKE SA's message ID state. Guarded by the SA's mutex.
type window struct {
	nextID uint32 // the next request ID this end sends
	armed  uint32 // how many times timer was armed: a stale one does nothing
	expect uint32 // the next request ID expected from the peer
	// hasResp: lastResp is the response to request expect-1, as sent.
	hasResp  bool
	out      *request   // outstanding
	queue    []*request // waiting their turn
	timer    clock.Timer
	lastResp [][]byte
}

// stop ends the window and returns the requests it held, outstanding
// and queued.
func (w *window) stop() []*request {
	w.stopTimer()
	held := w.queue
	if w.out != nil {
		held = append([]*request{w.out}, held...)
	}
	w.out, w.queue = nil, nil
	return held
}

// stopTimer stops the retransmission timer and lets it go: its function
// holds the request, with its handlers and datagrams, which an answered
// exchange no longer needs.
func (w *window) stopTimer() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// fresh returns the request as it was before it was sent, to send on
// another IKE SA (the successor of a rekeyed one).
func (r *request) fresh() *request {
	return &request{exchange: r.exchange, kind: r.kind, build: r.build, onResponse: r.onResponse,
		onTimeout: r.onTimeout, onDrop: r.onDrop, schedule: r.schedule, plain: r.plain}
}

// outstanding reports whether the request outstanding is of kind k.
func (w *window) outstanding(k reqKind) bool { return w.out != nil && w.out.kind == k }

// busy reports whether a request is outstanding or queued.
func (w *window) busy() bool { return w.out != nil || len(w.queue) > 0 }

// request queues r and sends it when the window allows. The SA's mutex
// must be held.
func (sa *ikeSA) request(r *request) {
	if sa.state == stateDead {
		return
	}
	sa.win.queue = append(sa.win.queue, r)
	sa.sendNext()
}

// sendNext sends the next queued request if none is outstanding.
func (sa *ikeSA) sendNext() {
	w := &sa.win
	for w.out == nil && len(w.queue) > 0 && sa.state != stateDead {
		r := w.queue[0]
		w.queue[0] = nil // the array must not hold it once answered
		w.queue = w.queue[1:]
		if len(w.queue) == 0 {
			w.queue = nil
		}
		ps, err := r.build(sa)
		if err != nil {
			sa.d.log.Warn("request not sent", "exchange", r.exchange.String(), "err", err)
			continue
		}
		r.msgID = w.nextID
		r.hdr, r.ps = sa.header(r.exchange, r.msgID, false), ps
		if r.plain {
			m := &Message{Header: r.hdr, Payloads: ps}
			r.wire = [][]byte{m.Marshal()}
		} else if r.wire, err = sa.sealOut(r.hdr, ps, 0); err != nil {
			sa.d.log.Warn("request not sent", "exchange", r.exchange.String(), "err", err)
			continue
		}
		if len(r.wire) > 1 {
			r.mtu = int(sa.frag.mtu)
		}
		if r.exchange == IKESAInit {
			sa.hs.initReq = r.wire[0]
		}
		if r.schedule.Timeout == 0 {
			sa.d.mu.Lock()
			r.schedule = sa.d.cfg.retrans
			sa.d.mu.Unlock()
		}
		r.timeout = r.schedule.Timeout
		w.out = r
		sa.sendAll(r.wire)
		sa.armRetransmit(r)
	}
}

func (sa *ikeSA) armRetransmit(r *request) {
	w := &sa.win
	w.stopTimer()
	// The function names the request by its arming, not by pointer: a
	// stopped timer may stay in the runtime's heap a while, and must not
	// keep an answered request's handlers and datagrams alive.
	w.armed++
	armed := w.armed
	w.timer = sa.d.clk.AfterFunc(r.timeout, func() {
		sa.lock()
		defer sa.unlock()
		if sa.win.armed == armed && sa.win.out != nil {
			sa.retransmit(sa.win.out)
		}
	})
}

// retransmit resends the outstanding request r, or gives up after the
// last try (§2.4: the peer is then unreachable).
func (sa *ikeSA) retransmit(r *request) {
	w := &sa.win
	if w.out != r || sa.state == stateDead {
		return
	}
	if r.tries >= r.schedule.Tries {
		w.out, w.timer = nil, nil
		sa.d.log.Warn("peer did not answer", "exchange", r.exchange.String(), "msgid", r.msgID, "remote", sa.remote)
		if r.onTimeout != nil {
			r.onTimeout(sa)
		}
		sa.sendNext()
		return
	}
	r.tries++
	sa.d.count(func(c *ike.Counters) { c.Retransmits++ })
	if r.mtu > 0 && r.tries%triesPerMTU == 0 {
		sa.refragment(r)
	}
	sa.sendAll(r.wire)
	r.timeout = r.schedule.Next(r.timeout)
	sa.armRetransmit(r)
}

// response handles a response to the outstanding request; it reports
// false if the message ID is not the outstanding request's.
func (sa *ikeSA) response(m *Message) bool {
	w := &sa.win
	r := w.out
	if r != nil && sa.resyncOut && m.MessageID == r.msgID && m.Exchange != r.exchange {
		// An imported SA (import.go): the peer answered a request of
		// this ID that the old daemon sent after the record; it is
		// again from the next ID.
		w.stopTimer()
		w.out, w.nextID = nil, w.nextID+1
		w.queue = append([]*request{r.fresh()}, w.queue...)
		sa.sendNext()
		return true
	}
	if r == nil || m.MessageID != r.msgID || m.Exchange != r.exchange {
		return false
	}
	w.stopTimer()
	w.out = nil
	w.nextID++
	sa.resyncOut = false
	r.onResponse(sa, m)
	sa.sendNext()
	return true
}

// respond sends the response to the peer's request expect and keeps it
// for retransmissions of that request.
func (sa *ikeSA) respond(t ExchangeType, ps []Payload) {
	h := sa.header(t, sa.win.expect, true)
	var b [][]byte
	if t == IKESAInit {
		b = [][]byte{(&Message{Header: h, Payloads: ps}).Marshal()}
	} else {
		var err error
		if b, err = sa.sealOut(h, ps, 0); err != nil {
			sa.d.log.Warn("response not sent", "exchange", t.String(), "err", err)
			return
		}
	}
	sa.win.expect++
	sa.win.lastResp, sa.win.hasResp = b, true
	sa.sendAll(b)
}

// refragment seals an unanswered fragmented request again in smaller
// fragments, if there is a smaller size to try (RFC 7383 §2.5.2); later
// messages of the SA use it too.
func (sa *ikeSA) refragment(r *request) {
	smaller := sa.smallerMTU(r.mtu)
	if smaller == 0 {
		return
	}
	wire, err := sa.sealOut(r.hdr, r.ps, smaller)
	if err != nil {
		sa.d.log.Warn("request not fragmented again", "exchange", r.exchange.String(), "err", err)
		return
	}
	sa.d.log.Info("no answer to a fragmented request: smaller fragments", "exchange", r.exchange.String(),
		"from", r.mtu, "to", smaller, "remote", sa.remote)
	r.wire, r.mtu, sa.frag.mtu = wire, smaller, int32(smaller)
}
