package offload

import (
	"runtime"
	"sync"

	"github.com/ismgw/ism/ipsec"
)

// Pipeline runs bursts of one direction through the engine with their
// crypto spread over worker goroutines, so that a single SA can use more
// than one core while its packets keep their order (the pipeline of
// wireguard-go's device/send.go and receive.go). One producer feeds it and
// one consumer drains it:
//
//  1. Submit, on the producer's goroutine, prepares a burst in order: the
//     SA's state and lifetime, framing and sequence numbers (outbound), SA
//     lookup and the replay pre-check (inbound), each packet's op. Outbound
//     traffic is accounted against the SA's lifetime here, in packet order,
//     so the packet that crosses a limit is the same however many bursts
//     are in flight. The burst then goes to the order queue and to the work
//     queue.
//  2. A worker takes the burst from the work queue and runs its ops on
//     their drivers (each worker has its own queue pairs), then signals the
//     burst done. It touches only the ops and the bytes they cover. When
//     every worker already has a burst waiting, Submit runs this stage
//     itself, on the core whose caches hold the burst.
//  3. Next, on the consumer's goroutine, takes the oldest burst from the
//     order queue, waits for its done signal and finishes it: each op's
//     outcome, the replay check-and-update (inbound: in sequence order,
//     only for packets whose ICV verified), de-framing, inbound lifetime
//     accounting, counters. Bursts come out in the order they went in.
//
// Locking rule: a Burst belongs to one stage at a time. It is handed on by a
// channel operation (Submit's send, the worker's done signal, the order
// queue), which orders each stage's writes before the next stage's reads;
// no lock is taken per packet. Submit blocks while Depth bursts are in
// flight.
//
// Submit and Close are called by one goroutine, Next by one goroutine
// (it may be the same). A Pipeline is made by Engine.NewPipeline; it has no
// usable zero value.
type Pipeline struct {
	dir      ipsec.Direction
	pre, fin *Processor
	work     chan *Burst
	order    chan *Burst
	ndrv     int
	workers  int
	wg       sync.WaitGroup
	close    sync.Once
	drained  bool
	help     *cryptoRunner // the producer's, when it does a burst's crypto
}

// PipelineConfig configures a Pipeline.
type PipelineConfig struct {
	// Workers is the number of crypto goroutines; 0 means GOMAXPROCS.
	Workers int
	// Depth is the most bursts in flight between Submit and Next; 0 means
	// four per worker.
	Depth int
}

// Burst is one burst of packets in a Pipeline. Make it with NewBurst of
// the Pipeline it goes through. Between Next and the next Submit it
// belongs to the caller, who sets Pkts (at most BurstSize packets) and
// Owner; the pipeline never reads Owner.
type Burst struct {
	Pkts  []*Packet
	Owner any

	st   burstState
	done chan struct{}
}

// NewPipeline starts a pipeline for dir's SAs with c.Workers crypto
// goroutines, stopped by Close.
func (e *Engine) NewPipeline(dir ipsec.Direction, c PipelineConfig) *Pipeline {
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Depth <= 0 {
		c.Depth = 4 * c.Workers
	}
	pl := &Pipeline{dir: dir, pre: e.newProcessor(false), fin: e.newProcessor(false), ndrv: len(e.disp.all), workers: c.Workers,
		work: make(chan *Burst, c.Depth), order: make(chan *Burst, c.Depth)}
	pl.help = &cryptoRunner{}
	pl.help.init(e)
	for range c.Workers {
		cr := &cryptoRunner{}
		cr.init(e)
		pl.wg.Add(1)
		go pl.worker(cr)
	}
	return pl
}

// NewBurst returns an empty burst for this pipeline, with room for
// BurstSize packets.
func (pl *Pipeline) NewBurst() *Burst {
	b := &Burst{Pkts: make([]*Packet, 0, BurstSize), done: make(chan struct{}, 1)}
	b.st.init(pl.ndrv)
	return b
}

// Depth returns the most bursts in flight; a producer that keeps Depth+2
// bursts never waits for one of its own.
func (pl *Pipeline) Depth() int { return cap(pl.order) }

// Workers returns the number of crypto goroutines.
func (pl *Pipeline) Workers() int { return pl.workers }

// Submit prepares b and hands it to the workers; it blocks while Depth
// bursts are in flight. b belongs to the pipeline until Next returns it.
// len(b.Pkts) must be at most BurstSize.
func (pl *Pipeline) Submit(b *Burst) {
	p := pl.pre
	p.now = nanotime()
	p.cur = &b.st
	p.prepare(b.Pkts, pl.dir)
	if pl.dir == ipsec.Outbound {
		p.account()
	}
	pl.order <- b
	if len(pl.work) >= pl.workers {
		// Every worker has a burst waiting already: the producer does
		// this one's crypto itself, on the core whose caches hold the
		// burst it has just read and framed.
		pl.help.run(&b.st, b.Pkts)
		b.done <- struct{}{}
		return
	}
	pl.work <- b
}

// Next returns the oldest burst once its crypto is done, finished: each
// packet carries its result or its Drop, in the order submitted. It blocks
// until that burst is ready, and reports false once the pipeline is closed
// and every burst has come out.
func (pl *Pipeline) Next() (*Burst, bool) {
	b, ok := <-pl.order
	if !ok {
		if !pl.drained {
			pl.drained = true
			pl.pre.e.retire(pl.pre, pl.fin)
		}
		return nil, false
	}
	<-b.done
	p := pl.fin
	p.now = nanotime()
	p.cur = &b.st
	p.finish(b.Pkts, pl.dir)
	p.endBurst()
	return b, true
}

// Close stops the pipeline after the bursts already submitted: it waits
// for the workers to finish them and exit. Next still returns those bursts,
// then reports false. Call it once Submit is no longer called.
func (pl *Pipeline) Close() {
	pl.close.Do(func() {
		close(pl.work)
		close(pl.order)
		pl.wg.Wait()
	})
}

// worker is stage 2.
func (pl *Pipeline) worker(cr *cryptoRunner) {
	defer pl.wg.Done()
	for b := range pl.work {
		cr.run(&b.st, b.Pkts)
		b.done <- struct{}{}
	}
}
