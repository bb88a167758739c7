package ism

import (
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// Tunnel is a secure tunnel with the secure IP interface stacked on it.
// IKE's goroutines and the data path read it concurrently with the control
// plane; fields that change after creation are atomic or guarded by mu.
type Tunnel struct {
	Name string
	// cfg is the tunnel's configuration: a reload that changes nothing
	// but the positions in the file swaps it while IKE's goroutines read
	// it (conf).
	cfg atomic.Pointer[config.Tunnel]
	// d is what the datapath knows of the tunnel, and the state it shares.
	d      *datapath.Tunnel
	op, tr *vr.VR

	up atomic.Bool
	// ready says the tunnel's routes belong in its operational VR: a
	// manual tunnel when it is up, a signaled one once its endpoint works,
	// so that traffic reaches it and starts IKE.
	ready atomic.Bool
	// acquired is when the data path last asked IKE for SAs (unix nano).
	acquired atomic.Int64
	since    atomic.Int64 // when the state last changed (unix nano)

	mu     sync.Mutex
	closed bool // torn down: no path may be set again
	// standby: the tunnel's cluster group runs on another node; it has
	// no path. Fixed at setup.
	standby  bool
	routable bool
	dp       int           // the index of its datapath in Gateway.dps
	path     datapath.Path // nil while it has none
	// sas are the SAs installed on the path.
	sas    saSet
	reason string // why the tunnel is down
	// dpWhy is why the tunnel runs on its datapath, when the gateway chose
	// it over another.
	dpWhy   string
	pathMTU int
	dest    netip.Addr // the current destination
	// negotiated and pfs are what IKE agreed for the current SAs.
	negotiated transform.Transform
	pfs        int
	// deadAt is when DPD last declared the peer dead; retried is the last
	// try at the peer since.
	deadAt  time.Time
	retried time.Time
	// resumed says how the tunnel's SAs resumed from a checkpoint, for
	// show detail.
	resumed []string
}

// conf returns the tunnel's configuration.
func (t *Tunnel) conf() *config.Tunnel { return t.cfg.Load() }

// signaled reports whether IKE negotiates the tunnel's SAs.
func (t *Tunnel) signaled() bool { return t.conf().Type == config.Signaled }

// routed reports whether the tunnel's routes should be installed.
func (t *Tunnel) routed() bool {
	if t.signaled() {
		return t.ready.Load()
	}
	return t.Up()
}

// setReady says whether a signaled tunnel's routes belong in; it reports
// whether that changed.
func (t *Tunnel) setReady(ready bool) bool {
	changed := t.ready.Swap(ready) != ready
	t.d.Routed.Store(t.routed())
	return changed
}

// Up reports whether the tunnel carries traffic.
func (t *Tunnel) Up() bool { return t.up.Load() }

// setState changes the state; it reports whether it changed.
func (t *Tunnel) setState(c clock.Clock, up bool, reason string) bool {
	t.mu.Lock()
	t.reason = reason
	t.mu.Unlock()
	changed := t.up.Swap(up) != up
	t.d.Routed.Store(t.routed())
	if changed {
		t.since.Store(c.Now().UnixNano())
	}
	return changed
}

// Reason returns why the tunnel is down, or "" when it is up.
func (t *Tunnel) Reason() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.up.Load() {
		return ""
	}
	return t.reason
}

// currentPath returns the tunnel's path, or nil.
func (t *Tunnel) currentPath() datapath.Path {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.path
}

// destination returns the current destination.
func (t *Tunnel) destination() netip.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dest
}

// hasSAs reports whether the tunnel has SAs both ways.
func (t *Tunnel) hasSAs() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hasSAsLocked()
}

func (t *Tunnel) hasSAsLocked() bool {
	var in, out bool
	for _, d := range t.sas.all() {
		in, out = in || d == ipsec.Inbound, out || d == ipsec.Outbound
	}
	return in && out
}

// pathState returns whether the destination is routable and, if not, why.
func (t *Tunnel) pathState() (bool, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.routable, t.reason
}

// retryDue reports whether a tunnel whose peer DPD declared dead should
// try the peer again now, and notes the try.
func (t *Tunnel) retryDue(now time.Time, every time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	due := !t.deadAt.IsZero() && now.Sub(t.deadAt) > every && now.Sub(t.retried) > every
	if due {
		t.retried = now
	}
	return due
}

// setDatapathWhy notes why the tunnel runs on its datapath. The reason is
// interned: thousands of tunnels share a handful of them.
func (t *Tunnel) setDatapathWhy(s string) {
	s = unique.Make(s).Value()
	t.mu.Lock()
	t.dpWhy = s
	t.mu.Unlock()
}

// transform is the tunnel's transform for show output and its MTU: its
// outbound SA's, or the transform set's first.
func (t *Tunnel) transform() transform.Transform {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := false
	for _, d := range t.sas.all() {
		out = out || d == ipsec.Outbound
	}
	switch {
	case out && t.signaled():
		return t.negotiated
	case out:
		return t.conf().Outbound.Transform
	case len(t.conf().TransformSet.Transforms) > 0:
		return t.conf().TransformSet.Transforms[0]
	}
	return transform.Transform{}
}

// computeMTU sets the inner MTU from the path MTU to the destination.
func (t *Tunnel) computeMTU() {
	if t.conf().MTU > 0 {
		t.d.MTU.Store(int32(t.conf().MTU))
		return
	}
	t.mu.Lock()
	path, dest := t.pathMTU, t.dest
	t.mu.Unlock()
	if path == 0 {
		path = 1500
	}
	tr := t.transform()
	if !tr.Valid() {
		t.d.MTU.Store(int32(path - 80))
		return
	}
	t.d.MTU.Store(int32(offload.MaxInner(tr, t.d.Mode, dest.Is6(), t.d.UDPPort != 0, path)))
}

func (t *Tunnel) String() string { return fmt.Sprintf("ipsec:%s", t.Name) }

// saSet is a tunnel's installed SAs with their directions: two, four
// during a rekey, a short slice where a map took 400 bytes. The zero
// value is empty; Tunnel.mu guards it.
type saSet []installedSA

type installedSA struct {
	id  ipsec.SAID
	dir ipsec.Direction
}

// add enters an SA, or changes its direction.
func (s *saSet) add(id ipsec.SAID, dir ipsec.Direction) {
	for i := range *s {
		if (*s)[i].id == id {
			(*s)[i].dir = dir
			return
		}
	}
	*s = append(*s, installedSA{id, dir})
}

// remove takes an SA out.
func (s *saSet) remove(id ipsec.SAID) {
	*s = slices.DeleteFunc(*s, func(e installedSA) bool { return e.id == id })
	if len(*s) == 0 {
		*s = nil
	}
}

// all yields the SAs and their directions.
func (s saSet) all() iter.Seq2[ipsec.SAID, ipsec.Direction] {
	return func(yield func(ipsec.SAID, ipsec.Direction) bool) {
		for _, e := range s {
			if !yield(e.id, e.dir) {
				return
			}
		}
	}
}
