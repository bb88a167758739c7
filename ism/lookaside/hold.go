package lookaside

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/offload"
)

// The acquire hold queue: the packets that reach a signaled tunnel where
// no outbound SA covers them (the ones that make the gateway ask IKE for
// SAs) wait, bounded, and leave in order on the SA that covers them once
// IKE installs it, as a kernel holds them on its larval SA (Linux XFRM
// with xfrm_larval_drop off). Over the bound they are dropped as
// acquire-overflow; when the negotiation fails or a packet has waited
// HoldTime, as acquire-failed.
//
// Order: an outbound SA installed while packets are held is marked held
// until a release finds no held packet any SA covers; meanwhile the
// packets it takes queue behind the held ones. The tunnel's other SAs
// keep sending: a second child SA being negotiated, or backing off, never
// holds up the traffic of the first.

// Bounds of a tunnel's hold queue.
const (
	HoldPackets = 32
	HoldBytes   = 64 << 10
	// HoldTime is how long a held packet waits for its SA, as Linux's
	// net.core.xfrm_acq_expires (30 s).
	HoldTime = 30 * time.Second
)

// heldPacket is a copy of a held packet with its addresses.
type heldPacket struct {
	b        []byte
	src, dst netip.Addr
	at       time.Time // when it arrived
}

// released is a held packet leaving, with the SA that covers it.
type released struct {
	b  []byte
	sa *saEntry
}

// holdQueue is one tunnel's held packets. The zero value is an empty
// queue; it is safe for concurrent use.
type holdQueue struct {
	mu    sync.Mutex
	pkts  []heldPacket
	bytes int
	// marked are the held flags of the outbound SAs installed while
	// packets were held (saEntry.held), set until a take finds none that
	// an SA covers.
	marked []*atomic.Bool
}

// hold queues a copy of pkt from src to dst, unless that would cross a
// bound; it reports whether it did.
func (q *holdQueue) hold(pkt []byte, src, dst netip.Addr, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pkts) >= HoldPackets || q.bytes+len(pkt) > HoldBytes {
		return false
	}
	q.pkts = append(q.pkts, heldPacket{b: append([]byte(nil), pkt...), src: src, dst: dst, at: now})
	q.bytes += len(pkt)
	return true
}

// await sets the held flag of a new outbound SA when packets are held:
// the SA's own packets queue behind them until they are released.
func (q *holdQueue) await(held *atomic.Bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pkts) > 0 {
		held.Store(true)
		q.marked = append(q.marked, held)
	}
}

// take returns up to n held packets that an SA of t covers, oldest first,
// with their SAs; the others stay. With none to take it clears the held
// flags and returns nil.
func (q *holdQueue) take(n int, t *outTable) []released {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []released
	kept := q.pkts[:0]
	for _, h := range q.pkts {
		if len(out) < n {
			if e := t.pick(h.src, h.dst); e != nil {
				out = append(out, released{b: h.b, sa: e})
				q.bytes -= len(h.b)
				continue
			}
		}
		kept = append(kept, h)
	}
	clear(q.pkts[len(kept):])
	q.pkts = kept
	if len(kept) == 0 {
		q.pkts = nil // its array held what out holds: let it go with out
	}
	if len(out) == 0 {
		for _, f := range q.marked {
			f.Store(false)
		}
		q.marked = nil
	}
	return out
}

// expire drops the packets that have waited HoldTime, or with force those
// that no SA of t covers (what waited for a negotiation that failed), and
// returns how many it dropped.
func (q *holdQueue) expire(now time.Time, force bool, t *outTable) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := q.pkts[:0]
	for _, h := range q.pkts {
		if force && t.pick(h.src, h.dst) == nil || !force && now.Sub(h.at) >= HoldTime {
			q.bytes -= len(h.b)
			continue
		}
		kept = append(kept, h)
	}
	n := len(q.pkts) - len(kept)
	clear(q.pkts[len(kept):])
	q.pkts = kept
	if len(kept) == 0 {
		q.pkts = nil // its array held what out holds: let it go with out
	}
	return n
}

// holdOrDrop queues a packet of pt that no outbound SA covers yet (or
// that must wait behind packets held for its SA), counting it when the
// queue is full.
func (d *Datapath) holdOrDrop(pt *path, pkt []byte, src, dst netip.Addr) {
	if !pt.hold.hold(pkt, src, dst, d.clock.Now()) {
		pt.t.TX.Drop(offload.DropHoldOverflow)
	}
}

// release sends the tunnel's held packets that an outbound SA covers, in
// order, in bursts, each on the SA that covers it, until none is left.
// It runs on the goroutine that installed the SA or held a packet;
// releases of all tunnels share one processor.
func (p *path) release() {
	d := p.d
	d.relMu.Lock()
	defer d.relMu.Unlock()
	var tx transport.Sender
	for {
		held := p.hold.take(offload.BurstSize, p.outs.Load())
		if held == nil {
			return
		}
		if d.relProc == nil {
			d.relProc = d.eng.NewProcessor()
		}
		pkts := make([]*offload.Packet, len(held))
		d.newPackets(pkts, offload.BufferSize, nil)
		for i, h := range held {
			pkts[i].Reset(len(h.b))
			copy(pkts[i].Buf.Bytes(), h.b)
			pkts[i].SA = h.sa.sa
		}
		d.relProc.Encap(pkts)
		for i, pk := range pkts {
			if pk.Drop != offload.NotDropped {
				p.t.TX.Drop(pk.Drop)
				continue
			}
			p.t.TX.Packets.Add(1)
			p.t.TX.Bytes.Add(uint64(len(held[i].b)))
			tx.Add(held[i].sa.sock, pk)
		}
		tx.Flush(func(pk *offload.Packet) { p.t.TX.Drop(offload.DropSendError) })
	}
}

// releaseAfter releases p's held packets after delay, at once without
// one. Close stops the timers still pending.
func (d *Datapath) releaseAfter(p *path, delay time.Duration) {
	if delay <= 0 {
		p.release()
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	r := &delayed{}
	d.delayed[r] = struct{}{}
	d.wg.Add(1)
	r.timer = d.clock.AfterFunc(delay, func() {
		defer d.wg.Done()
		d.mu.Lock()
		_, due := d.delayed[r]
		delete(d.delayed, r)
		d.mu.Unlock()
		if due {
			p.release()
		}
	})
}

// delayed is a release waiting for its time.
type delayed struct{ timer clock.Timer }

// DropHeld drops the packets held for the tunnel's negotiation, which
// failed (datapath.Holder): those no outbound SA covers.
func (p *path) DropHeld() {
	if n := p.hold.expire(time.Time{}, true, p.outs.Load()); n > 0 {
		p.t.TX.DropN(offload.DropHoldFailed, uint64(n))
	}
}

// expireHeld drops the held packets of every tunnel whose oldest has
// waited HoldTime.
func (d *Datapath) expireHeld() {
	d.mu.Lock()
	paths := make([]*path, 0, len(d.paths))
	for _, p := range d.paths {
		paths = append(paths, p)
	}
	d.mu.Unlock()
	now := d.clock.Now()
	for _, p := range paths {
		if n := p.hold.expire(now, false, nil); n > 0 {
			p.t.TX.DropN(offload.DropHoldFailed, uint64(n))
		}
	}
}

var _ datapath.Holder = (*path)(nil)
