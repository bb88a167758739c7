package ism

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// Tunnel is a secure tunnel with the secure IP interface stacked on it. The
// data path reads it concurrently with the control plane; fields that change
// after creation are atomic or guarded by mu.
type Tunnel struct {
	Name string
	id   uint64
	cfg  *config.Tunnel
	op   *vr // operational VR: the secure interface
	tr   *vr // transport VR: the endpoints
	ep   *endpoint

	local, remote selector.Selector
	mode          ipsec.Mode
	udp           bool

	// out is the outbound SA packets are sent with; nil when there is none.
	out atomic.Pointer[offload.SA]
	// xf is the tunnel's XFRM protocol offload; nil on the lookaside
	// datapath.
	xf atomic.Pointer[xfrmPath]
	// txSock is the transport socket outbound packets leave by.
	txSock atomic.Pointer[sock]
	up     atomic.Bool
	// ready says the tunnel's routes belong in its operational VR: a
	// manual tunnel when it is up, a signaled one once its endpoint works,
	// so that traffic reaches it and starts IKE.
	ready atomic.Bool
	// acquired is when the data path last asked IKE for SAs (unix nano).
	acquired atomic.Int64
	// mtu is the largest inner packet the tunnel carries.
	mtu atomic.Int32
	// tx and rx count the tunnel's traffic and drops by direction, across
	// SAs and rekeys.
	tx, rx offload.Counters
	since  atomic.Int64 // when the state last changed (unix nano)

	mu     sync.Mutex
	in     []*offload.SA // inbound SAs (two during a rekey)
	outs   []*offload.SA // outbound SAs still installed
	xin    []*xfrmSA     // the kernel's inbound SAs (XFRM datapath)
	xouts  []*xfrmSA     // the kernel's outbound SAs
	reason string        // why the tunnel is down
	// dpWhy is why the tunnel runs on its datapath, for driver kernel
	// and auto.
	dpWhy    string
	pathMTU  int
	dest     netip.Addr // the current destination
	routable bool
	// negotiated and pfs are what IKE agreed for the current SAs.
	negotiated transform.Transform
	pfs        int
	// deadAt is when DPD last declared the peer dead; retried is the last
	// try at the peer since.
	deadAt  time.Time
	retried time.Time
}

// signaled reports whether IKE negotiates the tunnel's SAs.
func (t *Tunnel) signaled() bool { return t.cfg.Type == config.Signaled }

// routed reports whether the tunnel's routes should be installed.
func (t *Tunnel) routed() bool {
	if t.signaled() {
		return t.ready.Load()
	}
	return t.Up()
}

// Up reports whether the tunnel carries traffic.
func (t *Tunnel) Up() bool { return t.up.Load() }

// setState changes the state; it reports whether it changed.
func (t *Tunnel) setState(up bool, reason string) bool {
	t.mu.Lock()
	t.reason = reason
	t.mu.Unlock()
	if t.up.Swap(up) == up {
		return false
	}
	t.since.Store(time.Now().UnixNano())
	return true
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

// sasConfig builds the offload SA for one direction of a manual SA.
func (t *Tunnel) saConfig(c *config.SA) offload.SAConfig {
	tc := t.cfg
	sc := offload.SAConfig{
		SPI: c.SPI, Transform: c.Transform, Mode: t.mode,
		CipherKey: c.CipherKey, AuthKey: c.AuthKey,
		ESN: tc.ESN, ReplayWindow: tc.ReplayWindow, Driver: string(tc.Driver), Cookie: t.id,
		UDPEncap: t.udp, SrcPort: tc.UDPEncapPort, DstPort: tc.UDPEncapPort,
	}
	if c.Direction == ipsec.Outbound {
		sc.Direction = ipsec.Outbound
		sc.Src, sc.Dst = tc.TunnelSource, t.dest
	} else {
		sc.Direction = ipsec.Inbound
		sc.Src, sc.Dst = t.dest, tc.TunnelSource
	}
	return sc
}

// transformName is the tunnel's transform for show output: the manual SA's,
// or the negotiated one, or the set's first.
func (t *Tunnel) transform() transform.Transform {
	if sa := t.out.Load(); sa != nil {
		return sa.Transform()
	}
	if len(t.cfg.TransformSet.Transforms) > 0 {
		return t.cfg.TransformSet.Transforms[0]
	}
	return transform.Transform{}
}

// computeMTU sets the inner MTU from the path MTU to the destination.
func (t *Tunnel) computeMTU() {
	if t.cfg.MTU > 0 {
		t.mtu.Store(int32(t.cfg.MTU))
		return
	}
	path := t.pathMTU
	if path == 0 {
		path = 1500
	}
	tr := t.transform()
	if !tr.Valid() {
		t.mtu.Store(int32(path - 80))
		return
	}
	t.mtu.Store(int32(offload.MaxInner(tr, t.mode, t.dest.Is6(), t.udp, path)))
}

func (t *Tunnel) String() string { return fmt.Sprintf("ipsec:%s", t.Name) }
