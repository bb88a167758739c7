package ism

import (
	"sync"

	"github.com/ismgw/ism/ism/config"
)

// jobs is the control goroutine's queue: work posted by IKE's and the data
// path's goroutines, which must not block or take the gateway's lock.
// post never blocks and never drops work while the gateway runs; the queue
// is bounded by what is in flight (each SA event fires once per SA). The
// zero value is not usable (init).
type jobs struct {
	mu     sync.Mutex
	q      []func()
	signal chan struct{}
	closed bool
}

func (j *jobs) init() { j.signal = make(chan struct{}, 1) }

// post queues f for the control goroutine; after Close it is discarded.
func (g *Gateway) post(f func()) { g.jobs.post(f) }

// post queues f for the goroutine that runs j; after Close it is
// discarded.
func (j *jobs) post(f func()) {
	j.mu.Lock()
	if !j.closed {
		j.q = append(j.q, f)
	}
	j.mu.Unlock()
	select {
	case j.signal <- struct{}{}:
	default:
	}
}

func (j *jobs) take() []func() {
	j.mu.Lock()
	defer j.mu.Unlock()
	q := j.q
	j.q = nil
	return q
}

// control is the gateway's control goroutine: it runs the posted work in
// order.
func (g *Gateway) control() { g.run(&g.jobs) }

// acquirer hands the data path's acquires to IKE in order, apart from the
// control goroutine: an IKEv2 acquire makes its Diffie-Hellman key in the
// caller, and a storm of them would hold the routes and SA expiries
// queued behind.
func (g *Gateway) acquirer() { g.run(&g.acquires) }

// run runs what is posted to j, in order, until the gateway closes.
func (g *Gateway) run(j *jobs) {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-j.signal:
			for _, f := range j.take() {
				f()
			}
		}
	}
}

// stopControl stops the control goroutine and the path timer and waits for
// them; work posted after it is discarded.
func (g *Gateway) stopControl() {
	j := &g.jobs
	j.mu.Lock()
	j.closed = true
	j.q = nil
	if g.paths != nil && g.paths.Stop() {
		g.wg.Done()
	}
	j.mu.Unlock()
	a := &g.acquires
	a.mu.Lock()
	a.closed, a.q = true, nil
	a.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}

// armPathCheck schedules the next path check on the gateway's clock.
func (g *Gateway) armPathCheck() {
	j := &g.jobs
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return
	}
	g.wg.Add(1)
	g.paths = g.clock.AfterFunc(g.timers.PathCheck, func() {
		defer g.wg.Done()
		g.post(func() {
			g.recheckPaths()
			g.armPathCheck()
		})
	})
}

// recheckPaths looks each tunnel's destination up again; a manual tunnel
// whose destination becomes routable (or stops being) changes state. A
// signaled tunnel whose peer DPD declared dead, with no backup, tries the
// peer again now and then, since no traffic comes to start IKE.
func (g *Gateway) recheckPaths() {
	g.mu.Lock()
	defer g.mu.Unlock()
	changed := false
	now := g.clock.Now()
	for _, t := range g.tunnels {
		if t.signaled() && !t.ready.Load() {
			if t.retryDue(now, g.timers.DeadRetry) {
				if d := g.daemon(); d != nil {
					d.Acquire(t.Name)
				}
			}
			continue
		}
		if t.conf().Type != config.Manual || !t.d.Destination.IsValid() {
			continue
		}
		g.checkPath(t)
		routable, reason := t.pathState()
		switch {
		case routable && t.hasSAs() && !t.Up():
			changed = g.changeState(t, true, "") || changed
		case !routable && t.Up():
			changed = g.changeState(t, false, reason) || changed
		}
		mtu := t.d.MTU.Load()
		if t.computeMTU(); t.d.MTU.Load() != mtu && !changed {
			// A path MTU the kernel learnt from ICMP: the routes carry
			// the tunnel's MTU, so that senders learn it too instead
			// of their packets being dropped as too big.
			g.syncTunnelRoutes(t)
		}
	}
	if changed {
		g.syncRoutes()
	}
}
