package offload

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ismgw/ism/ipsec"
)

// Pipeline runs bursts of one direction through the engine on several
// lanes (goroutines) at once, so that a single SA can use more than one
// core while its packets keep their order. Each lane runs a whole burst,
// so that the burst's packets stay in one core's caches from the read to
// the send (moving a burst of 128 full-size packets between cores costs
// about as much as its crypto):
//
//  1. Intake, one lane at a time, in the order bursts are delivered: Fill
//     reads the caller's input into the burst (a TUN device, a socket),
//     then the burst is prepared: the SA's state and lifetime, framing and
//     sequence numbers (outbound), SA lookup and the replay pre-check
//     (inbound), each packet's op. Outbound traffic is accounted against
//     the SA's lifetime here, in packet order, so the packet that crosses a
//     limit is the same however many bursts are in flight. The burst gets
//     its place in the order.
//  2. Crypto, on the lane, in parallel with the other lanes: each op on its
//     driver (each lane has its own queue pairs). Outbound bursts are
//     finished here too (each op's outcome, the ICV's place): nothing of it
//     depends on order.
//  3. Delivery, one burst at a time, in the intake's order. Inbound bursts
//     are finished first: the replay check-and-update in sequence order,
//     only for packets whose ICV verified, de-framing, lifetime accounting,
//     counters. Then Deliver hands the burst on (a socket send, a TUN
//     write). The lane whose burst is next delivers it, and then the bursts
//     after it that other lanes left ready; a lane whose burst must wait
//     for an earlier one leaves it and takes the next intake turn.
//
// A lane that delivered its own burst keeps it for its next intake turn
// instead of freeing it, so that a burst's buffers (its Owner's) stay in
// one core's caches from one use to the next: handed from core to core
// through a shared free list, every buffer line written last on the other
// core must move before Fill and the crypto can write it again. A lane
// that must wait for the intake gives its kept burst up first, so that the
// lane in the intake, which may be waiting for a free burst, never waits
// for it.
//
// Locking rule: a Burst belongs to one lane at a time; it is handed to the
// delivering lane through the order ring under the delivery lock, which
// orders the first lane's writes before the second's reads. No lock is
// taken per packet. The intake lock is held across Fill: a lane that waits
// for input (a blocking read) holds it, and the other lanes wait for it
// once their bursts are delivered.
//
// A Pipeline is made by Engine.NewPipeline, which starts its lanes; it has
// no usable zero value. SetWorkers and Wait are safe for concurrent use.
type Pipeline struct {
	e   *Engine
	dir ipsec.Direction
	c   PipelineConfig

	intake  sync.Mutex
	stopped bool   // Fill said the input is closed; guarded by intake
	ticket  uint64 // the next burst's place in the order; guarded by intake

	free chan *Burst // bursts not in flight
	made int         // bursts made; guarded by intake
	// depth is the most bursts made.
	depth atomic.Int32

	mu         sync.Mutex // the delivery stage
	ready      [orderRing]*Burst
	next       uint64 // the ticket delivered next
	delivering bool   // a lane is delivering

	// inCrypto is the bursts between the intake and the delivery;
	// bursts and overlapped count the bursts run, and those that began
	// their crypto while another burst was in it (PipelineStats).
	inCrypto           atomic.Int32
	bursts, overlapped atomic.Uint64
	kept               atomic.Uint64 // bursts a lane ran again after delivering them
	lanesUsed          atomic.Int32  // lanes that ran a burst

	lanes   sync.Mutex
	running atomic.Int32 // lanes started and not yet left
	target  atomic.Int32 // lanes wanted
	ended   bool         // a lane saw the input closed; guarded by lanes
	wg      sync.WaitGroup
}

// orderRing bounds the bursts in flight.
const orderRing = 256

// PipelineConfig configures a Pipeline.
type PipelineConfig struct {
	// Workers is the number of lanes; 0 means GOMAXPROCS.
	Workers int
	// Depth is the most bursts in flight, made as traffic needs them; 0
	// means two per lane. At most 256.
	Depth int
	// NewBurst is called for each burst the pipeline makes, to set its
	// Owner (the caller's per-burst state, such as the buffers Fill reads
	// into), one at a time and never during Fill. Nil leaves Owner nil.
	NewBurst func(b *Burst)
	// Fill reads the next burst of input into b.Pkts (empty, with room
	// for BurstSize packets); outbound, each packet's SA is set. It is
	// called by one lane at a time, in the order the bursts are delivered,
	// and may block waiting for input. It returns false when the input is
	// closed: the pipeline then delivers the bursts it has and its lanes
	// end.
	Fill func(b *Burst) bool
	// Deliver takes each burst once its packets are done, each carrying
	// its result or its Drop, in the order Fill filled them, one at a
	// time. The burst is reused once Deliver returns, unless Deliver has
	// taken packets out of it (setting a packet's Buf to nil is the
	// caller's business: Fill must give the burst new packets).
	Deliver func(b *Burst)

	holdFinish func() // tests: called before each inbound finish
}

// Burst is one burst of packets in a Pipeline. Between Fill and the return
// of Deliver its packets belong to the pipeline; Owner is the caller's and
// the pipeline never reads it.
type Burst struct {
	Pkts  []*Packet
	Owner any

	st     burstState
	ticket uint64
}

// NewPipeline starts a pipeline for dir's SAs with c.Workers lanes, which
// run until Fill reports the input closed.
func (e *Engine) NewPipeline(dir ipsec.Direction, c PipelineConfig) *Pipeline {
	pl := &Pipeline{e: e, dir: dir, c: c, free: make(chan *Burst, orderRing)}
	if c.Depth > 0 {
		pl.depth.Store(int32(min(c.Depth, orderRing)))
	}
	pl.SetWorkers(c.Workers)
	return pl
}

// SetWorkers sets the number of lanes; 0 means GOMAXPROCS. Lanes beyond
// the number leave after their current burst; new ones start at once. It
// does nothing once the input is closed.
func (pl *Pipeline) SetWorkers(n int) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	pl.lanes.Lock()
	defer pl.lanes.Unlock()
	if pl.ended {
		return
	}
	pl.target.Store(int32(n))
	if pl.c.Depth <= 0 {
		pl.depth.Store(int32(min(2*n, orderRing)))
	}
	for pl.running.Load() < int32(n) {
		pl.running.Add(1)
		pl.wg.Add(1)
		go pl.lane()
	}
}

// Workers returns the number of lanes wanted.
func (pl *Pipeline) Workers() int { return int(pl.target.Load()) }

// PipelineStats counts a pipeline's bursts.
type PipelineStats struct {
	// Bursts is how many bursts ran; Overlapped how many of them began
	// their crypto while another burst was still in its own: the lanes'
	// work overlapped (on as many cores as the machine gave them).
	Bursts, Overlapped uint64
	// Kept is how many bursts a lane ran again straight after it had
	// delivered them itself (their buffers warm in its core's caches).
	Kept uint64
	// Lanes is how many lanes ran a burst, of those started since the
	// pipeline was made.
	Lanes int
}

// Stats returns the pipeline's counters.
func (pl *Pipeline) Stats() PipelineStats {
	return PipelineStats{Bursts: pl.bursts.Load(), Overlapped: pl.overlapped.Load(), Kept: pl.kept.Load(),
		Lanes: int(pl.lanesUsed.Load())}
}

// Wait returns once the input is closed, every burst taken in has been
// delivered and the lanes have ended.
func (pl *Pipeline) Wait() { pl.wg.Wait() }

// lane runs bursts until the input closes or the lane is no longer wanted.
func (pl *Pipeline) lane() {
	p := pl.e.NewProcessor()
	defer func() {
		pl.e.retire(p)
		pl.wg.Done()
	}()
	var spare *Burst // the burst this lane delivered last, kept for it
	for ran := false; ; ran = true {
		if pl.leave() {
			pl.release(spare)
			return
		}
		b := pl.admit(p, spare)
		if b == nil {
			return
		}
		if b == spare {
			pl.kept.Add(1)
		}
		if !ran {
			pl.lanesUsed.Add(1)
		}
		pl.bursts.Add(1)
		if pl.inCrypto.Add(1) > 1 {
			pl.overlapped.Add(1)
		}
		p.now = nanotime()
		p.cr.run(&b.st, b.Pkts)
		if pl.dir == ipsec.Outbound {
			p.finish(b.Pkts, pl.dir)
			p.endBurst()
		}
		pl.inCrypto.Add(-1)
		spare = pl.complete(p, b)
	}
}

// release frees a burst a lane kept, if any.
func (pl *Pipeline) release(spare *Burst) {
	if spare != nil {
		pl.free <- spare
	}
}

// leave reports whether this lane should end because fewer are wanted.
func (pl *Pipeline) leave() bool {
	if pl.running.Load() <= pl.target.Load() {
		return false
	}
	pl.lanes.Lock()
	defer pl.lanes.Unlock()
	if pl.running.Load() <= pl.target.Load() {
		return false
	}
	pl.running.Add(-1)
	return true
}

// take returns spare if the lane kept one, or a free burst, making one
// while fewer than the depth exist. pl.intake is held.
func (pl *Pipeline) take(spare *Burst) *Burst {
	if spare != nil {
		return spare
	}
	select {
	case b := <-pl.free:
		return b
	default:
	}
	if pl.made < int(pl.depth.Load()) {
		pl.made++
		b := &Burst{Pkts: make([]*Packet, 0, BurstSize)}
		b.st.init(len(pl.e.disp.all))
		if pl.c.NewBurst != nil {
			pl.c.NewBurst(b)
		}
		return b
	}
	return <-pl.free
}

// admit is the intake: the lane's spare burst or a free one, Fill, then
// prepare in order. It returns the burst, or nil once the input is closed
// (spare freed).
func (pl *Pipeline) admit(p *Processor, spare *Burst) *Burst {
	if !pl.lockIntake(spare) {
		spare = nil
	}
	var b *Burst
	if !pl.stopped {
		b = pl.take(spare)
		b.Pkts = b.Pkts[:0]
		if pl.stopped = !pl.c.Fill(b); pl.stopped {
			pl.free <- b
		}
	}
	if pl.stopped {
		if b == nil {
			pl.release(spare)
		}
		pl.intake.Unlock()
		pl.lanes.Lock()
		pl.ended = true
		pl.running.Add(-1)
		pl.lanes.Unlock()
		return nil
	}
	p.now = nanotime()
	p.cur = &b.st
	p.prepare(b.Pkts, pl.dir)
	if pl.dir == ipsec.Outbound {
		p.account()
	}
	b.ticket = pl.ticket
	pl.ticket++
	pl.intake.Unlock()
	return b
}

// intakeSpin is how many times a lane yields its core while it waits for
// the intake before it sleeps on the lock: about 50 µs, a few intake turns.
const intakeSpin = 256

// lockIntake takes the intake lock. A lane that finds it held yields and
// tries again for a while before it sleeps: a sleeping lane is woken onto
// the run queue of the core that let go of the lock, behind that lane's
// own crypto, and another core takes it from there only after its thread
// has been woken too (tens of microseconds on a virtual machine, as much as
// a burst's crypto). Yielding keeps the waiting lane's thread on its core.
// It reports whether it got the lock without sleeping; before it sleeps it
// frees spare, which the lane in the intake may be waiting for.
func (pl *Pipeline) lockIntake(spare *Burst) (keep bool) {
	for range intakeSpin {
		if pl.intake.TryLock() {
			return true
		}
		runtime.Gosched()
	}
	pl.release(spare)
	pl.intake.Lock()
	return false
}

// complete is stage 3: b is ready; if it is next, this lane delivers it
// and every ready burst after it. It returns b if this lane delivered it,
// kept for the lane's next burst, or nil.
func (pl *Pipeline) complete(p *Processor, b *Burst) (kept *Burst) {
	pl.mu.Lock()
	pl.ready[b.ticket%orderRing] = b
	if pl.delivering {
		pl.mu.Unlock()
		return nil
	}
	pl.delivering = true
	for {
		nb := pl.ready[pl.next%orderRing]
		if nb == nil || nb.ticket != pl.next {
			break
		}
		pl.ready[pl.next%orderRing] = nil
		pl.next++
		pl.mu.Unlock()
		if pl.dir == ipsec.Inbound {
			if pl.c.holdFinish != nil {
				pl.c.holdFinish()
			}
			p.now = nanotime()
			p.cur = &nb.st
			p.finish(nb.Pkts, pl.dir)
			p.endBurst()
		}
		pl.c.Deliver(nb)
		if nb == b {
			kept = nb
		} else {
			pl.free <- nb
		}
		pl.mu.Lock()
	}
	pl.delivering = false
	pl.mu.Unlock()
	return kept
}
