// Package xfrm is the datapath of the kernel's XFRM protocol offload: a
// tunnel's secure interface is an XFRM interface of its own (link kind
// xfrm, a per-tunnel if_id), made in the transport VR and moved into the
// operational VR, and its SAs and policies live in the transport VR's
// kernel, which frames ESP/AH itself. SAs are installed over XFRM netlink
// (driver/kernel); the kernel's expire and acquire notifications become
// the datapath's events.
package xfrm

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/driver/kernel"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// DriverText is the driver a tunnel on the XFRM datapath shows.
const DriverText = "kernel (xfrm protocol offload)"

// Config configures the datapath.
type Config struct {
	Events datapath.Events
	Logger *slog.Logger
	// Off turns the datapath off: it supports no tunnel, whatever the
	// kernel offers (for tests and benchmarks of ISM's own datapath).
	Off bool
}

// Datapath is the XFRM datapath. Its methods are safe for concurrent use;
// the zero value is not usable (New).
type Datapath struct {
	log       *slog.Logger
	events    datapath.Events
	off       bool
	probeOnce sync.Once
	probe     *kernel.Report
	wg        sync.WaitGroup

	mu     sync.Mutex
	conns  map[*vr.VR]*conn // the transport VRs' XFRM connections
	paths  map[*path]bool
	sas    map[ipsec.SAID]*sa // every kernel SA the datapath installed
	closed bool
}

var _ datapath.Datapath = (*Datapath)(nil)

// New returns a datapath; it probes the kernel on first use.
func New(c Config) *Datapath {
	d := &Datapath{log: c.Logger, events: c.Events, off: c.Off, conns: map[*vr.VR]*conn{}, paths: map[*path]bool{}, sas: map[ipsec.SAID]*sa{}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d
}

// Name returns "xfrm".
func (d *Datapath) Name() string { return "xfrm" }

// report returns what the kernel offers, probed once per datapath (kernel
// modules are shared by every namespace, so one probe speaks for all VRs).
func (d *Datapath) report() *kernel.Report {
	d.probeOnce.Do(func() { d.probe = kernel.Probe() })
	return d.probe
}

// Supports takes the tunnels whose driver is kernel, or auto where the
// kernel's XFRM accepts their transforms, and that need nothing XFRM
// cannot give.
func (d *Datapath) Supports(t *datapath.Tunnel) error {
	if t.Driver != "kernel" && t.Driver != "auto" {
		return datapath.ErrNotAsked
	}
	if why := d.unusable(t); why != "" {
		return &datapath.Unsupported{Reason: "xfrm protocol offload not used: " + why, Asked: t.Driver == "kernel"}
	}
	return nil
}

// unusable says why t cannot run on the XFRM datapath, or "".
func (d *Datapath) unusable(t *datapath.Tunnel) string {
	switch {
	case d.off:
		return "turned off for this gateway (NoXFRM)"
	case t.Mode == ipsec.Transport:
		return "transport mode runs on the lookaside datapath"
	case t.UDPPort != 0:
		return "UDP encapsulation (RFC 3948) runs on the lookaside datapath"
	case !prefixable(t.Local) || !prefixable(t.Remote):
		return "a range selector that is not a prefix has no XFRM policy"
	case !t.Destination.IsValid():
		return "a tunnel without a fixed destination runs on the lookaside datapath"
	case t.Backup:
		return "failover to a backup destination runs on the lookaside datapath"
	case t.PolicyRoutes:
		return "source-based policy routes run on the lookaside datapath"
	case len(t.Transforms) == 0:
		return "the tunnel has no transform"
	}
	r := d.report()
	st := r.ESP
	if t.Transforms[0].Protocol == transform.AH {
		st = r.AH
	}
	if !st.Present {
		return st.Reason
	}
	for _, tr := range t.Transforms {
		found := false
		for _, k := range r.XFRMTransforms {
			found = found || k == tr
		}
		if !found {
			return fmt.Sprintf("kernel XFRM does not accept %s", tr.Name())
		}
	}
	return ""
}

// prefixable reports whether a selector is one XFRM selector.
func prefixable(s selector.Selector) bool {
	if s.Kind == selector.Any {
		return true
	}
	_, ok := s.Prefix()
	return ok
}

// nextIfID numbers the XFRM interfaces of every datapath in the process.
var nextIfID atomic.Uint32

// NextLinkName is the name the next XFRM interface made in this process
// gets, for tests that put something in its way.
func NextLinkName() string { return fmt.Sprintf("ismx%d", nextIfID.Load()+1) }

// ifIDBase keeps ISM's XFRM interface IDs apart from small ones an
// operator may use; drawn at start, it keeps two daemons sharing a
// transport VR from binding their SAs and policies to the same IDs.
var ifIDBase = 0x15a00000 + rand.Uint32N(0xea600000-0x100000)

// Open makes t's XFRM interface, with its addresses, and its policies.
func (d *Datapath) Open(t *datapath.Tunnel) (datapath.Path, error) {
	c, err := d.conn(t.Transport)
	if err != nil {
		return nil, fault(err)
	}
	n := nextIfID.Add(1)
	p := &path{d: d, t: t, c: c, ifID: ifIDBase + n, name: fmt.Sprintf("ismx%d", n)}
	names := make([]string, 0, len(t.Transforms))
	for _, tr := range t.Transforms {
		names = append(names, tr.Name())
	}
	p.why = fmt.Sprintf("driver %s: kernel XFRM accepts %s", t.Driver, strings.Join(names, ", "))
	if p.index, err = newLink(t.Transport, t.Op, p.name, p.ifID); err != nil {
		d.release(t.Transport)
		return nil, fault(err)
	}
	for _, a := range t.Addresses {
		if err = t.Op.Netlink.AddAddr(p.index, a); err != nil {
			err = fmt.Errorf("xfrm: address %s on %s: %w", a, p.name, err)
			break
		}
	}
	if err == nil {
		err = p.addPolicies()
	}
	if err != nil {
		p.Close()
		return nil, fault(err)
	}
	d.mu.Lock()
	d.paths[p] = true
	d.mu.Unlock()
	return p, nil
}

// fault marks an error as the datapath failing, not declining.
func fault(err error) error { return fmt.Errorf("xfrm protocol offload faulted: %w", err) }

// conn is a transport VR's XFRM connection and the listener of its expire
// and acquire notifications, shared by the VR's tunnels.
type conn struct {
	x      *kernel.XFRM
	events *netlink.Conn
	refs   int // Datapath.mu
}

// conn returns v's connection with a reference taken, opening it and
// starting its listener on first use.
func (d *Datapath) conn(v *vr.VR) (*conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("xfrm: datapath closed")
	}
	if c := d.conns[v]; c != nil {
		c.refs++
		return c, nil
	}
	x, err := kernel.OpenXFRM(v.NS.Name())
	if err != nil {
		return nil, fmt.Errorf("xfrm: XFRM in VR %s: %w", v.Name, err)
	}
	ev, err := netlink.Dial(unix.NETLINK_XFRM, &netlink.Config{NetNS: v.NS.FD(),
		Groups: 1<<(groupAcquire-1) | 1<<(groupExpire-1)})
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("xfrm: XFRM notifications in VR %s: %w", v.Name, err)
	}
	c := &conn{x: x, events: ev, refs: 1}
	d.conns[v] = c
	d.wg.Add(1)
	go d.listen(v, ev)
	return c, nil
}

// release drops a reference to v's connection; the last one closes it and
// its listener.
func (d *Datapath) release(v *vr.VR) {
	d.mu.Lock()
	c := d.conns[v]
	if c == nil {
		d.mu.Unlock()
		return
	}
	c.refs--
	if c.refs > 0 {
		d.mu.Unlock()
		return
	}
	delete(d.conns, v)
	d.mu.Unlock()
	c.events.Close()
	c.x.Close()
}

// Stats: the XFRM datapath counts nothing beyond its tunnels; the
// kernel's counters show per SA.
func (d *Datapath) Stats() datapath.Stats { return datapath.Stats{} }

// ResetStats does nothing: the kernel's counters cannot be reset.
func (d *Datapath) ResetStats() {}

// Close closes the paths still open, then the connections, and waits for
// the listeners to end.
func (d *Datapath) Close() {
	d.mu.Lock()
	d.closed = true
	paths := make([]*path, 0, len(d.paths))
	for p := range d.paths {
		paths = append(paths, p)
	}
	d.mu.Unlock()
	for _, p := range paths {
		p.Close()
	}
	d.mu.Lock()
	conns := d.conns
	d.conns = map[*vr.VR]*conn{}
	d.mu.Unlock()
	for _, c := range conns {
		c.events.Close()
		c.x.Close()
	}
	d.wg.Wait()
}

// policySelectors returns the (local, remote) prefix pairs of the
// policies: the tunnel's selectors, "any" being 0.0.0.0/0 or ::/0.
func policySelectors(t *datapath.Tunnel) [][2]netip.Prefix {
	return [][2]netip.Prefix{{selPrefix(t.Local), selPrefix(t.Remote)}}
}

func selPrefix(s selector.Selector) netip.Prefix {
	if s.Kind == selector.Any {
		return netip.PrefixFrom(s.From, 0)
	}
	p, _ := s.Prefix()
	return p
}
