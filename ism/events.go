package ism

import (
	"sync"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/offload"
)

// saEvents queues the data path's SA lifetime events for the control
// goroutine. post never blocks; each event fires once per SA, so the queue
// is bounded by the number of SAs. The zero value is ready.
type saEvents struct {
	mu     sync.Mutex
	q      []offload.Event
	signal chan struct{}
	once   sync.Once
	closed bool
}

func (e *saEvents) init() { e.once.Do(func() { e.signal = make(chan struct{}, 1) }) }

func (e *saEvents) post(ev offload.Event) {
	e.init()
	e.mu.Lock()
	if !e.closed {
		e.q = append(e.q, ev)
	}
	e.mu.Unlock()
	select {
	case e.signal <- struct{}{}:
	default:
	}
}

func (e *saEvents) take() []offload.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.q
	e.q = nil
	return q
}

func (e *saEvents) close() {
	e.init()
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
}

// deadRetry is how often a signaled tunnel whose peer DPD declared dead,
// with no backup to fail over to, tries the peer again.
const deadRetry = 30 * time.Second

// control is the gateway's control goroutine: SA events, lifetime sweeps and
// path checks.
func (g *Gateway) control() {
	defer g.wg.Done()
	g.events.init()
	sweep := time.NewTicker(time.Second)
	defer sweep.Stop()
	paths := time.NewTicker(pathCheckInterval)
	defer paths.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-g.events.signal:
			for _, ev := range g.events.take() {
				g.saEvent(ev)
			}
		case f := <-g.jobs:
			f()
		case <-sweep.C:
			g.eng.Sweep()
		case <-paths.C:
			g.recheckPaths()
		}
	}
}

// saEvent handles a lifetime event. Manual SAs have no lifetimes; the event
// that reaches them is sequence exhaustion, which takes the tunnel down.
func (g *Gateway) saEvent(ev offload.Event) {
	t := g.tunnelByID(ev.SA.Cookie())
	if t == nil {
		return
	}
	g.log.Info("SA event", "tunnel", t.String(), "sa", ev.SA.ID().String(), "event", ev.Kind.String(), "cause", ev.Cause.String())
	if t.signaled() {
		if d := g.ike.Load(); d != nil {
			id := ev.SA.ID()
			d.Expire(ipsec.SAID{Dst: id.Dst, SPI: id.SPI, Protocol: id.Protocol}, ev.Kind == offload.EventHardExpire)
		}
		return
	}
	if ev.Kind != offload.EventHardExpire {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.changeState(t, false, "SA "+ev.SA.ID().String()+" expired: "+ev.Cause.String()) {
		g.log.Warn("tunnel down", "tunnel", t.String(), "reason", t.Reason())
		g.syncTunnelRoutes(t)
	}
}

// recheckPaths looks each tunnel's destination up again; a manual tunnel
// whose destination becomes routable (or stops being) changes state.
func (g *Gateway) recheckPaths() {
	g.mu.Lock()
	defer g.mu.Unlock()
	changed := false
	for _, t := range g.tunnels {
		if t.signaled() && !t.ready.Load() {
			// DPD found the peer dead and the routes went; try the peer
			// again now and then, since no traffic comes to start IKE.
			t.mu.Lock()
			due := !t.deadAt.IsZero() && time.Since(t.deadAt) > deadRetry && time.Since(t.retried) > deadRetry
			if due {
				t.retried = time.Now()
			}
			t.mu.Unlock()
			if due {
				if d := g.ike.Load(); d != nil {
					d.Acquire(t.Name)
				}
			}
			continue
		}
		if t.cfg.Type != config.Manual || !t.dest.IsValid() {
			continue
		}
		g.checkPath(t)
		t.mu.Lock()
		routable, reason := t.routable, t.reason
		hasSAs := len(t.in) > 0 && t.out.Load() != nil || len(t.xin) > 0 && len(t.xouts) > 0
		t.mu.Unlock()
		switch {
		case routable && hasSAs && !t.Up():
			changed = g.changeState(t, true, "") || changed
		case !routable && t.Up():
			changed = g.changeState(t, false, reason) || changed
		}
		t.computeMTU()
	}
	if changed {
		g.syncRoutes()
	}
}
