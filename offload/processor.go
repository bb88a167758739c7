package offload

import (
	"crypto/rand"
	"net/netip"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
)

// BurstSize is the most packets a Processor takes in one call; it sizes
// every per-burst slice of the data path.
const BurstSize = 128

// Headroom and Tailroom are what a Buffer needs around a packet for the
// engine to encapsulate in place: outer IPv6 and UDP headers, ESP header and
// IV before; padding, trailer, ICV and the ESN high bits after.
const (
	Headroom = 128
	Tailroom = 128
)

// BufferSize is the size of a packet buffer: headroom, the largest packet
// and tailroom.
const BufferSize = Headroom + driver.MaxPacket + Tailroom

// stuckAfter is how long a Processor waits for an accelerator's completions
// before it declares the queue stuck and the driver faulty.
const stuckAfter = 100 * time.Millisecond

// Packet is one packet going through a Processor. The caller owns it and
// its Buf between calls.
type Packet struct {
	// Buf holds the packet: the inner IP packet for Encap, the outer IP
	// packet for Decap. On return it holds the result.
	Buf *driver.Buffer
	// SA is set by the caller for Encap and found by Decap.
	SA *SA
	// Drop is set when the packet was dropped.
	Drop DropReason
	// NextHeader is, after Decap, the protocol of the result: 4 or 41 in
	// tunnel mode, the transport protocol in transport mode.
	NextHeader uint8
	// Outer is, for Decap, where a packet that starts at the ESP header
	// came from and went to: ESP in UDP as a UDP socket received it,
	// which took the IP and UDP headers off. With Outer zero, Buf holds
	// the whole outer IP packet. Encap leaves it alone: an encapsulated
	// packet goes to its SA's SA.Outer().Dst.
	Outer Outer

	op  driver.Op
	bnd *binding
	seq uint64
	f   framing
}

// Outer is where a packet comes from and goes to outside the tunnel. A
// zero port is raw IP.
type Outer struct {
	Src, Dst netip.AddrPort
}

// NewPacket returns a packet with a Go-memory buffer of BufferSize bytes,
// its offset at Headroom.
func NewPacket() *Packet {
	return &Packet{Buf: &driver.Buffer{Mem: make([]byte, BufferSize), Off: Headroom}}
}

// Reset makes the packet ready for a new payload of n bytes at Headroom.
func (p *Packet) Reset(n int) {
	p.Buf.Off, p.Buf.Len = Headroom, n
	p.SA, p.Drop, p.NextHeader, p.bnd = nil, NotDropped, 0, nil
	p.Outer = Outer{} // on its own: zeroed in place, not through a copy
}

// Processor runs bursts of packets through the engine. It is owned by one
// goroutine and is not safe for concurrent use.
type Processor struct {
	e *Engine
	// cur is the burst being prepared or finished: own when the
	// Processor runs whole bursts, a Burst's when it is a Pipeline's
	// lane.
	cur   *burstState
	own   burstState
	cr    cryptoRunner
	stats Counters
	now   int64
	// seqNext and seqLeft are the sequence numbers reserved for the rest
	// of a run of outbound packets with one SA (prepareOut): the SA's
	// counter is touched once a run. seqLeft < 0: the SA refused.
	seqNext uint64
	seqLeft int
	// tailroom is what the engine's drivers need after a packet.
	tailroom int
	// last is the inbound SA the previous lookup found.
	last *SA
	// locked is the SA whose replay window the finish stage holds, so that
	// a run of packets for one SA takes its lock once.
	locked *SA
	ivs    [BurstSize * 16]byte
	ivPos  int
	// ivHook, set only by tests, writes the IV of each outbound ESP packet
	// instead of the sequence number or random bytes (known-answer tests).
	ivHook func(iv []byte, seq uint64)
}

// newProcessor returns a Processor with its own queue pairs.
func newProcessor(e *Engine) *Processor {
	p := &Processor{e: e, ivPos: BurstSize * 16, tailroom: e.disp.tailroom}
	p.own.init(len(e.disp.all))
	p.cur = &p.own
	p.cr.init(e)
	return p
}

// hold returns the SA's binding with a reference taken for the burst, or
// nil once the SA is deleted. (prepare has the common case inline: the
// binding held since the previous packet.)
func (p *Processor) hold(sa *SA) *binding {
	s := p.cur
	for {
		b := sa.bind.Load()
		if b == nil {
			return nil
		}
		if b == s.last {
			return b
		}
		if s.holdBinding(b) {
			return b
		}
		if sa.state.Load()&stateDeleted != 0 {
			return nil
		}
	}
}

// Encap encapsulates each packet with its SA (set by the caller) and returns
// when every packet is done or dropped. len(pkts) must be at most BurstSize.
func (p *Processor) Encap(pkts []*Packet) {
	p.run(pkts, ipsec.Outbound)
}

// Decap finds each packet's inbound SA, verifies and decapsulates it, and
// returns when every packet is done or dropped. len(pkts) must be at most
// BurstSize.
func (p *Processor) Decap(pkts []*Packet) {
	p.run(pkts, ipsec.Inbound)
}

func (p *Processor) run(pkts []*Packet, dir ipsec.Direction) {
	p.now = nanotime()
	p.cur = &p.own
	p.prepare(pkts, dir)
	p.cr.run(p.cur, pkts)
	p.finish(pkts, dir)
	p.endBurst()
}

// prepare is stage 1: each packet's SA, framing and op; the ops go to the
// burst's per-driver lists.
func (p *Processor) prepare(pkts []*Packet, dir ipsec.Direction) {
	if dir == ipsec.Outbound {
		p.prepareOut(pkts)
		return
	}
	s := p.cur
	for i, pk := range pkts {
		if r := p.prepareInbound(pk); r != NotDropped {
			p.drop(pk, r)
			continue
		}
		if pk.bnd = pk.SA.bind.Load(); pk.bnd != s.last || pk.bnd == nil {
			pk.bnd = p.hold(pk.SA)
		}
		if pk.bnd == nil {
			p.drop(pk, DropNoSA) // deleted meanwhile
			continue
		}
		p.queue(pk, i)
	}
}

// queue puts packet i's op on its driver's list for the crypto stage.
func (p *Processor) queue(pk *Packet, i int) {
	s := p.cur
	pk.op.Session = pk.bnd.sess
	pk.op.Buf = pk.Buf
	pk.op.Status = driver.NotProcessed
	pk.op.Tag = uint64(i)
	s.byDrv[pk.bnd.idx] = append(s.byDrv[pk.bnd.idx], &pk.op)
}

// finish is stage 3: each op's outcome, the replay window (inbound) and
// the framing's last touches; it counts what went through.
func (p *Processor) finish(pkts []*Packet, dir ipsec.Direction) {
	var n, bytes uint64
	for _, pk := range pkts {
		if pk.Drop != NotDropped {
			continue
		}
		var r DropReason
		switch {
		case pk.op.Status != driver.OK:
			r = p.status(pk)
		case dir == ipsec.Inbound:
			r = p.finishInbound(pk)
		case pk.f.icvMove:
			r = p.finishOutbound(pk)
		}
		if r != NotDropped {
			p.drop(pk, r)
			if dir == ipsec.Outbound {
				p.charge(pk.SA, -1, -int64(pk.f.inner)) // charged in prepare
			}
			continue
		}
		n++
		bytes += uint64(pk.Buf.Len)
	}
	p.stats.Packets.Add(n)
	p.stats.Bytes.Add(bytes)
}

// acct is an SA's traffic in the burst being processed.
type acct struct {
	sa          *SA
	pkts, bytes int64
}

// charge adds traffic to the burst's account of sa.
func (p *Processor) charge(sa *SA, pkts, bytes int64) {
	s := p.cur
	if n := len(s.acc); n > 0 && s.acc[n-1].sa == sa {
		s.acc[n-1].pkts += pkts
		s.acc[n-1].bytes += bytes
		return
	}
	for i := range s.acc {
		if s.acc[i].sa == sa {
			s.acc[i].pkts += pkts
			s.acc[i].bytes += bytes
			return
		}
	}
	s.acc = append(s.acc, acct{sa, pkts, bytes})
}

// pending returns what the burst has charged sa so far.
func (p *Processor) pending(sa *SA) (pkts, bytes uint64) {
	s := p.cur
	for i := len(s.acc) - 1; i >= 0; i-- {
		if s.acc[i].sa == sa {
			return uint64(max(0, s.acc[i].pkts)), uint64(max(0, s.acc[i].bytes))
		}
	}
	return 0, 0
}

// endBurst accounts the burst's traffic to its SAs (lifetimes, counters)
// and lets go of the bindings it held.
func (p *Processor) endBurst() {
	p.lockReplay(nil)
	p.account()
	p.cur.releaseAll()
}

// account charges the burst's traffic to its SAs, firing the lifetime
// events it crosses, and empties the burst's account. A negative account
// (packets charged when a Pipeline prepared them, dropped after) is given
// back.
func (p *Processor) account() {
	s := p.cur
	for _, a := range s.acc {
		switch {
		case a.pkts > 0:
			a.sa.account(uint64(a.pkts), uint64(a.bytes), p.now)
		case a.pkts < 0:
			a.sa.refund(uint64(-a.pkts), uint64(-a.bytes))
		}
	}
	clear(s.acc)
	s.acc = s.acc[:0]
}

// takeSeq returns a packet's sequence number from a reservation made for
// the rest of its run (left packets, this one included), so that an SA's
// counter is touched once a run; 0, never a sequence number (RFC 4303
// §3.3.3), when the SA has run out. prepareRun starts each run with none.
func (p *Processor) takeSeq(sa *SA, left int) uint64 {
	if p.seqLeft <= 0 {
		return p.reserveSeq(sa, left)
	}
	p.seqLeft--
	p.seqNext++
	return p.seqNext - 1
}

// reserveSeq is takeSeq with no numbers left: it reserves the rest of the
// run's unless the SA has refused already.
func (p *Processor) reserveSeq(sa *SA, left int) uint64 {
	if p.seqLeft < 0 {
		return 0
	}
	var granted int
	p.seqNext, granted = sa.reserveSeq(left)
	if granted == 0 {
		p.seqLeft = -1 // refused: keep refusing this run
		return 0
	}
	p.seqLeft = granted - 1
	p.seqNext++
	return p.seqNext - 1
}

// status maps the op's outcome to a drop reason; a driver fault moves the
// SA to the fallback engine.
func (p *Processor) status(pk *Packet) DropReason {
	switch pk.op.Status {
	case driver.OK:
		return NotDropped
	case driver.AuthFailed:
		return DropICV
	case driver.InvalidSession:
		return DropNoSA
	case driver.InvalidArgs:
		return DropMalformed
	}
	if pk.bnd.idx != 0 {
		p.e.disp.moveToFallback(pk.SA, pk.bnd.drv.Name()+" failed an op: "+pk.op.Status.String())
	}
	return DropDriverFault
}

func (p *Processor) drop(pk *Packet, r DropReason) {
	pk.Drop = r
	p.stats.Drop(r)
	if pk.SA != nil {
		pk.SA.stats.Drop(r)
	}
}

// nextIV returns n fresh random bytes for a CBC IV (RFC 3602 §2.4: IVs must
// be unpredictable), drawn from a per-burst block to keep the system call
// off the per-packet path.
func (p *Processor) nextIV(n int) []byte {
	if p.ivPos+n > len(p.ivs) {
		_, _ = rand.Read(p.ivs[:]) // never fails; crashes the program if the OS does
		p.ivPos = 0
	}
	iv := p.ivs[p.ivPos : p.ivPos+n]
	p.ivPos += n
	return iv
}

// lockReplay holds sa's replay lock for the finish stage, letting go of the
// previous SA's; nil lets go.
func (p *Processor) lockReplay(sa *SA) {
	if p.locked == sa {
		return
	}
	if p.locked != nil {
		p.locked.mu.Unlock()
	}
	if p.locked = sa; sa != nil {
		sa.mu.Lock()
	}
}
