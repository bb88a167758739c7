package lookaside

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/offload"
)

// The acquire hold queue: the packets that reach a signaled tunnel before
// its first outbound SA (the ones that make the gateway ask IKE for SAs)
// wait, bounded, and leave in order once IKE installs the SA, as a kernel
// holds them on its larval SA (Linux XFRM with xfrm_larval_drop off).
// Over the bound they are dropped as acquire-overflow; when the
// negotiation fails or takes longer than HoldTime, as acquire-failed.
//
// Order: while packets are held or being released the tunnel is
// holding, and every packet of the tunnel queues behind them, also once
// the SA is in; the release sends them in bursts until the queue is
// empty, then stops holding.

// Bounds of a tunnel's hold queue.
const (
	HoldPackets = 32
	HoldBytes   = 64 << 10
	// HoldTime is how long a held packet waits for its SA, as Linux's
	// net.core.xfrm_acq_expires (30 s).
	HoldTime = 30 * time.Second
)

// holdQueue is one tunnel's held packets, as copies. The zero value is an
// empty queue; it is safe for concurrent use.
type holdQueue struct {
	// holding is set while packets are held or being released: the
	// tunnel's packets queue behind them.
	holding atomic.Bool

	mu    sync.Mutex
	pkts  [][]byte
	bytes int
	since time.Time // when the oldest held packet arrived
}

// hold queues a copy of pkt, unless that would cross a bound; it reports
// whether it did.
func (q *holdQueue) hold(pkt []byte, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pkts) >= HoldPackets || q.bytes+len(pkt) > HoldBytes {
		return false
	}
	if len(q.pkts) == 0 {
		q.since = now
	}
	q.pkts = append(q.pkts, append([]byte(nil), pkt...))
	q.bytes += len(pkt)
	q.holding.Store(true)
	return true
}

// take returns up to n held packets, oldest first; with none left it stops
// holding and returns nil.
func (q *holdQueue) take(n int) [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pkts) == 0 {
		q.holding.Store(false)
		return nil
	}
	n = min(n, len(q.pkts))
	out := q.pkts[:n:n]
	q.pkts = q.pkts[n:]
	if len(q.pkts) == 0 {
		q.pkts = nil // its array points at what out holds: let it go with out
	}
	for _, p := range out {
		q.bytes -= len(p)
	}
	return out
}

// expire empties the queue when its oldest packet has waited HoldTime, or
// at once with force, and returns how many packets it dropped.
func (q *holdQueue) expire(now time.Time, force bool) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.pkts)
	if n == 0 || !force && now.Sub(q.since) < HoldTime {
		return 0
	}
	q.pkts, q.bytes = nil, 0
	q.holding.Store(false)
	return n
}

// holdOrDrop queues a packet of pt that has no outbound SA yet (or must
// wait behind packets that had none), counting it when the queue is full.
func (d *Datapath) holdOrDrop(pt *path, pkt []byte) {
	if !pt.hold.hold(pkt, d.clock.Now()) {
		pt.t.TX.Drop(offload.DropHoldOverflow)
	}
}

// release sends the tunnel's held packets on its outbound SA, in order,
// in bursts, until none is left. It runs on the goroutine that installed
// the SA; releases of all tunnels share one processor.
func (p *path) release() {
	if !p.hold.holding.Load() {
		return
	}
	d := p.d
	d.relMu.Lock()
	defer d.relMu.Unlock()
	if d.relProc == nil {
		d.relProc = d.eng.NewProcessor()
	}
	var tx transport.Sender
	for {
		held := p.hold.take(offload.BurstSize)
		if held == nil {
			return
		}
		sa, s := p.out.Load(), p.txSock.Load()
		if sa == nil || s == nil { // the SA went again
			p.t.TX.Drops[offload.DropHoldFailed].Add(uint64(len(held)))
			continue
		}
		pkts := make([]*offload.Packet, len(held))
		d.newPackets(pkts, offload.BufferSize)
		for i, b := range held {
			pkts[i].Reset(len(b))
			copy(pkts[i].Buf.Bytes(), b)
			pkts[i].SA = sa
		}
		d.relProc.Encap(pkts)
		for i, pk := range pkts {
			if pk.Drop != offload.NotDropped {
				p.t.TX.Drop(pk.Drop)
				continue
			}
			p.t.TX.Packets.Add(1)
			p.t.TX.Bytes.Add(uint64(len(held[i])))
			tx.Add(s, pk)
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
// failed (datapath.Holder).
func (p *path) DropHeld() {
	if n := p.hold.expire(time.Time{}, true); n > 0 {
		p.t.TX.Drops[offload.DropHoldFailed].Add(uint64(n))
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
		if n := p.hold.expire(now, false); n > 0 {
			p.t.TX.Drops[offload.DropHoldFailed].Add(uint64(n))
		}
	}
}

var _ datapath.Holder = (*path)(nil)
