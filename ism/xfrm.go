package ism

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ismgw/ism/driver/kernel"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// This file chooses a tunnel's datapath. A tunnel whose driver is "kernel",
// or "auto" where the kernel's XFRM accepts its transforms, runs as XFRM
// protocol offload: its secure IP interface is an XFRM interface, its SAs
// and policies live in the transport VR's kernel, and the kernel frames
// ESP/AH itself. Any other tunnel, and one whose XFRM setup faults, runs on
// the lookaside datapath (the TUN device and the offload engine).

// xfrmDriverText is the driver a tunnel on the XFRM datapath shows.
const xfrmDriverText = "kernel (xfrm protocol offload)"

// Why a tunnel that asked for XFRM (driver kernel) did not get it, counted
// with the engine's fallbacks in `show ipsec statistics`.
const (
	xfrmUnavailable = iota // the kernel or the tunnel's setup rules it out
	xfrmFault              // installing the interface, an SA or a policy failed
	numXFRMCounts
)

var xfrmCountNames = [numXFRMCounts]string{"xfrm-unavailable", "xfrm-fault"}

// xfrmState is the gateway's XFRM bookkeeping. Its methods are safe for
// concurrent use.
type xfrmState struct {
	off       bool // Options.NoXFRM
	probeOnce sync.Once
	probe     *kernel.Report
	counts    [numXFRMCounts]atomic.Uint64
	// expires counts the kernel's soft [0] and hard [1] expire
	// notifications for the gateway's SAs.
	expires [2]atomic.Uint64

	mu  sync.Mutex
	sas map[xfrmKey]*xfrmSA // every kernel SA the gateway installed
}

// xfrmKey is how the kernel finds an SA: destination, SPI and protocol.
type xfrmKey struct {
	dst   netip.Addr
	spi   uint32
	proto transform.Protocol
}

// report returns what the kernel offers, probed once per gateway (kernel
// modules are shared by every namespace, so one probe speaks for all VRs).
func (x *xfrmState) report() *kernel.Report {
	x.probeOnce.Do(func() { x.probe = kernel.Probe() })
	return x.probe
}

func (x *xfrmState) fallbacks(m map[string]uint64) {
	for i := range x.counts {
		m[xfrmCountNames[i]] = x.counts[i].Load()
	}
}

// xfrmPath is a tunnel on the XFRM datapath: its interface and policies.
// The SAs are in the tunnel's xin and xouts.
type xfrmPath struct {
	x        *kernel.XFRM // the transport VR's connection
	ifID     uint32
	name     string // the XFRM interface
	index    uint32 // its index in the operational VR
	policies []kernel.Policy
}

// leavesXFRM reports whether an unchanged tunnel on the XFRM datapath
// must be rebuilt on the lookaside one: the configuration being applied
// gives it something XFRM cannot carry, such as a policy route.
func (g *Gateway) leavesXFRM(t *Tunnel) bool {
	return t.xf.Load() != nil && g.xfrmUnusable(t) != ""
}

// nextIfID numbers the XFRM interfaces of every gateway in the process.
var nextIfID atomic.Uint32

// chooseXFRM decides whether t runs on the XFRM datapath, and records why
// in t.dpWhy.
func (g *Gateway) chooseXFRM(t *Tunnel) bool {
	d := t.cfg.Driver
	if d != config.DriverKernel && d != config.DriverAuto {
		return false
	}
	if why := g.xfrmUnusable(t); why != "" {
		t.setDatapathWhy("xfrm protocol offload not used: " + why)
		if d == config.DriverKernel {
			g.x.counts[xfrmUnavailable].Add(1)
			g.log.Warn("tunnel falls back to the lookaside datapath", "tunnel", t.String(), "driver", string(d), "reason", why)
		} else {
			g.log.Info("tunnel on the lookaside datapath", "tunnel", t.String(), "driver", string(d), "reason", why)
		}
		return false
	}
	names := make([]string, 0, 2)
	for _, tr := range t.transforms() {
		names = append(names, tr.Name())
	}
	why := fmt.Sprintf("driver %s: kernel XFRM accepts %s", d, strings.Join(names, ", "))
	t.setDatapathWhy(why)
	g.log.Info("tunnel on the XFRM datapath", "tunnel", t.String(), "driver", xfrmDriverText, "reason", why)
	return true
}

// xfrmUnusable says why t cannot run on the XFRM datapath, or "".
func (g *Gateway) xfrmUnusable(t *Tunnel) string {
	switch {
	case g.x.off:
		return "turned off for this gateway (NoXFRM)"
	case t.mode == ipsec.Transport:
		return "transport mode runs on the lookaside datapath"
	case t.udp:
		return "UDP encapsulation (RFC 3948) runs on the lookaside datapath"
	case !prefixable(t.local) || !prefixable(t.remote):
		return "a range selector that is not a prefix has no XFRM policy"
	case !t.dest.IsValid():
		return "a tunnel without a fixed destination runs on the lookaside datapath"
	case t.cfg.BackupDestination.Addr.IsValid():
		return "failover to a backup destination runs on the lookaside datapath"
	}
	for _, r := range g.applying.PolicyRoutes {
		if r.Tunnel == t.Name {
			return "source-based policy routes run on the lookaside datapath"
		}
	}
	r := g.x.report()
	ts := t.transforms()
	if len(ts) == 0 {
		return "the tunnel has no transform"
	}
	st := r.ESP
	if ts[0].Protocol == transform.AH {
		st = r.AH
	}
	if !st.Present {
		return st.Reason
	}
	for _, tr := range ts {
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

// transforms are those the tunnel may use: a manual tunnel's two SAs', or
// a signaled tunnel's set.
func (t *Tunnel) transforms() []transform.Transform {
	if t.signaled() {
		return t.cfg.TransformSet.Transforms
	}
	if t.cfg.Inbound == nil || t.cfg.Outbound == nil {
		return nil
	}
	if t.cfg.Inbound.Transform == t.cfg.Outbound.Transform {
		return []transform.Transform{t.cfg.Outbound.Transform}
	}
	return []transform.Transform{t.cfg.Outbound.Transform, t.cfg.Inbound.Transform}
}

func (t *Tunnel) setDatapathWhy(s string) {
	t.mu.Lock()
	t.dpWhy = s
	t.mu.Unlock()
}

// buildXFRM sets t up on the XFRM datapath. It returns why the tunnel is
// down ("" when it is up or waits for IKE), and false when the setup
// faulted: then nothing of it is left and the tunnel takes the lookaside
// datapath.
func (g *Gateway) buildXFRM(t *Tunnel) (string, bool) {
	p, err := g.newXFRMPath(t)
	if err == nil {
		t.xf.Store(p)
		err = g.xfrmPolicies(t, p)
	}
	if err == nil && !t.signaled() {
		for _, c := range []*config.SA{t.cfg.Inbound, t.cfg.Outbound} {
			if err = g.xfrmAddManual(t, p, c); err != nil {
				break
			}
		}
	}
	if err != nil {
		g.xfrmFallback(t, err)
		return "", false
	}
	tc := t.cfg
	if tc.Type == config.Signaled {
		if err := g.openIKE(t); err != nil {
			return err.Error(), true
		}
		if t.dest.IsValid() {
			if g.checkPath(t); !t.routable {
				return t.reason, true
			}
		}
		t.ready.Store(true)
		t.setState(false, "no SAs yet: negotiated on the first packet")
		return "", true
	}
	g.checkPath(t)
	if !t.routable {
		return t.reason, true
	}
	g.changeState(t, true, "")
	g.log.Info("tunnel up", "tunnel", t.String(), "transform", t.transform().Name(), "driver", xfrmDriverText)
	return "", true
}

// newXFRMPath makes the tunnel's XFRM interface, with its addresses, and
// the transport VR's XFRM connection.
func (g *Gateway) newXFRMPath(t *Tunnel) (*xfrmPath, error) {
	x, err := g.vrXFRM(t.tr)
	if err != nil {
		return nil, err
	}
	n := nextIfID.Add(1)
	p := &xfrmPath{x: x, ifID: ifIDBase + n, name: fmt.Sprintf("ismx%d", n)}
	if p.index, err = newXFRMLink(t.tr, t.op, p.name, p.ifID); err != nil {
		return nil, err
	}
	for _, a := range []netip.Prefix{t.cfg.Address, t.cfg.Address6} {
		if a.IsValid() {
			if err := t.op.rt.addAddr(p.index, a); err != nil {
				_ = t.op.rt.c.Link.Delete(p.index)
				return nil, fmt.Errorf("ism: address %s on %s: %w", a, p.name, err)
			}
		}
	}
	return p, nil
}

// xfrmIfIDBase keeps ISM's XFRM interface IDs apart from small ones an
// operator may use; ifIDBase, drawn at start, keeps two daemons sharing a
// transport VR from binding their SAs and policies to the same IDs.
const xfrmIfIDBase = 0x15a00000

var ifIDBase = xfrmIfIDBase + rand.Uint32N(0xea600000-0x100000)

// xfrmPolicies installs the tunnel's policies: out, in and fwd for its
// selectors, bound to its interface. Traffic of the other family (an IPv6
// router solicitation, say) finds no policy and goes nowhere, as the
// selectors make it on the lookaside datapath.
func (g *Gateway) xfrmPolicies(t *Tunnel, p *xfrmPath) error {
	proto := t.transforms()[0].Protocol
	for _, sel := range policySelectors(t) {
		for _, dir := range []kernel.PolicyDir{kernel.PolicyOut, kernel.PolicyIn, kernel.PolicyFwd} {
			pol := kernel.Policy{Src: sel[0], Dst: sel[1], Dir: dir, IfID: p.ifID, ReqID: p.ifID,
				TunnelSrc: t.cfg.TunnelSource, TunnelDst: t.dest, Protocol: proto, Mode: ipsec.Tunnel}
			if dir != kernel.PolicyOut {
				pol.Src, pol.Dst = sel[1], sel[0]
				pol.TunnelSrc, pol.TunnelDst = t.dest, t.cfg.TunnelSource
			}
			if err := p.x.AddPolicy(&pol); err != nil {
				return err
			}
			p.policies = append(p.policies, pol)
		}
	}
	return nil
}

// policySelectors returns the (local, remote) prefix pairs of the
// policies: the tunnel's selectors, "any" being 0.0.0.0/0 or ::/0.
func policySelectors(t *Tunnel) [][2]netip.Prefix {
	return [][2]netip.Prefix{{selPrefix(t.local), selPrefix(t.remote)}}
}

func selPrefix(s selector.Selector) netip.Prefix {
	if s.Kind == selector.Any {
		return netip.PrefixFrom(s.From, 0)
	}
	p, _ := s.Prefix()
	return p
}

// teardownXFRM deletes the tunnel's kernel SAs, policies and interface. It
// returns the SAs it deleted.
func (g *Gateway) teardownXFRM(t *Tunnel) []*xfrmSA {
	p := t.xf.Swap(nil)
	if p == nil {
		return nil
	}
	t.mu.Lock()
	sas := append(t.xin, t.xouts...)
	t.xin, t.xouts = nil, nil
	t.mu.Unlock()
	for _, sa := range sas {
		g.xfrmDelete(t, p, sa, nil)
	}
	for i := range p.policies {
		if err := p.x.DeletePolicy(&p.policies[i]); err != nil && !errors.Is(err, kernel.ErrNoSA) {
			g.log.Warn("delete XFRM policy", "tunnel", t.String(), "err", err)
		}
	}
	if err := t.op.rt.c.Link.Delete(p.index); err != nil {
		g.log.Warn("delete XFRM interface", "tunnel", t.String(), "interface", p.name, "err", err)
	}
	return sas
}

// xfrmFallback moves a tunnel whose XFRM setup faulted to the lookaside
// datapath: what was installed goes, the fault is counted and shown. IKE
// finding a NAT is no fault, and counts as xfrm-unavailable.
func (g *Gateway) xfrmFallback(t *Tunnel, err error) []*xfrmSA {
	sas := g.teardownXFRM(t)
	if errors.Is(err, errXFRMNATT) {
		g.x.counts[xfrmUnavailable].Add(1)
		t.setDatapathWhy("fallback: " + err.Error())
	} else {
		g.x.counts[xfrmFault].Add(1)
		t.setDatapathWhy("fallback: xfrm protocol offload faulted: " + err.Error())
	}
	g.log.Error("XFRM fault: tunnel moves to the lookaside datapath", "tunnel", t.String(), "err", err)
	return sas
}

// errXFRMNATT is why a signaled tunnel leaves the XFRM datapath when IKE
// finds a NAT: ESP in UDP (RFC 3948) runs on the lookaside datapath.
var errXFRMNATT = errors.New("ism: IKE negotiated UDP encapsulation (NAT traversal), which runs on the lookaside datapath")
