package ism

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/ismgw/ism/driver/kernel"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/transform"
)

// xfrmSA is an SA the kernel holds for a tunnel on the XFRM datapath. It
// keeps no keys: they went to the kernel and were wiped with the request.
type xfrmSA struct {
	tun      *Tunnel
	id       ipsec.SAID
	src      netip.Addr
	dir      ipsec.Direction
	t        transform.Transform
	esn      bool
	replay   int
	lifetime ipsec.Limits
	created  time.Time

	mu       sync.Mutex
	packets  uint64    // the kernel's count at the last query
	lastUsed time.Time // when a query last saw the count grow
	deleted  bool
}

func (sa *xfrmSA) key() xfrmKey {
	return xfrmKey{dst: sa.id.Dst, spi: sa.id.SPI, proto: sa.id.Protocol}
}

// xfrmInstall adds sa to the kernel with its keys and to the gateway's index.
func (g *Gateway) xfrmInstall(t *Tunnel, p *xfrmPath, sa *xfrmSA, ck, ak ipsec.Key) error {
	c := &kernel.SAConfig{Src: sa.src, Mode: ipsec.Tunnel, Transform: sa.t, CipherKey: ck, AuthKey: ak,
		Inbound: sa.dir == ipsec.Inbound, ReplayWindow: sa.replay, ESN: sa.esn, ReqID: p.ifID, IfID: p.ifID,
		Limits: sa.lifetime}
	if err := p.x.AddSA(sa.id, c); err != nil {
		return err
	}
	sa.created, sa.tun = time.Now(), t
	g.x.mu.Lock()
	if g.x.sas == nil {
		g.x.sas = map[xfrmKey]*xfrmSA{}
	}
	g.x.sas[sa.key()] = sa
	g.x.mu.Unlock()
	t.mu.Lock()
	if sa.dir == ipsec.Inbound {
		t.xin = append(t.xin, sa)
	} else {
		t.xouts = append(t.xouts, sa)
	}
	t.mu.Unlock()
	g.log.Info("SA installed", "tunnel", t.String(), "spi", fmt.Sprintf("0x%08x", sa.id.SPI), "dir", sa.dir.String(), "driver", xfrmDriverText)
	return nil
}

// xfrmAddManual installs one of a manual tunnel's SAs.
func (g *Gateway) xfrmAddManual(t *Tunnel, p *xfrmPath, c *config.SA) error {
	sa := &xfrmSA{t: c.Transform, esn: t.cfg.ESN, replay: t.cfg.ReplayWindow,
		id: ipsec.SAID{SPI: c.SPI, Protocol: c.Transform.Protocol, Dst: t.dest}, src: t.cfg.TunnelSource}
	if c.Direction == ipsec.Inbound {
		sa.dir = ipsec.Inbound
		sa.src, sa.id.Dst = t.dest, t.cfg.TunnelSource
	}
	return g.xfrmInstall(t, p, sa, c.CipherKey, c.AuthKey)
}

// xfrmAddSigned installs an SA IKE negotiated for a tunnel on the XFRM
// datapath; the caller zeroes the keys. It reports whether the tunnel now
// has SAs both ways.
func (g *Gateway) xfrmAddSigned(t *Tunnel, p *xfrmPath, id ipsec.SAID, u ike.UserSA) (bool, error) {
	sa := &xfrmSA{t: u.Transform, replay: t.cfg.ReplayWindow,
		id: ipsec.SAID{SPI: id.SPI, Protocol: u.Transform.Protocol, Dst: u.Dst}, src: u.Src,
		lifetime: ipsec.Limits{Soft: ipsec.Lifetime{Time: u.Soft.Time, Bytes: u.Soft.Bytes}, Hard: ipsec.Lifetime{Time: u.Hard.Time, Bytes: u.Hard.Bytes}}}
	if u.Inbound {
		sa.dir = ipsec.Inbound
	}
	if err := g.xfrmInstall(t, p, sa, u.CipherKey, u.AuthKey); err != nil {
		return false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !u.Inbound {
		t.dest = u.Dst
	}
	t.pfs, t.negotiated = u.PFSGroup, u.Transform
	return len(t.xin) > 0 && len(t.xouts) > 0, nil
}

// xfrmLookup finds an SA the gateway installed in a kernel, and its tunnel.
func (g *Gateway) xfrmLookup(dst netip.Addr, spi uint32, p transform.Protocol) *xfrmSA {
	g.x.mu.Lock()
	defer g.x.mu.Unlock()
	return g.x.sas[xfrmKey{dst: dst, spi: spi, proto: p}]
}

// xfrmDelete deletes an SA from the kernel and from the tunnel, whose
// counters keep what it carried: final, when the kernel has already deleted
// it (at its hard limit) and said what it carried, else what a query finds.
func (g *Gateway) xfrmDelete(t *Tunnel, p *xfrmPath, sa *xfrmSA, final *kernel.SAUsage) {
	sa.mu.Lock()
	gone := sa.deleted
	sa.deleted = true
	sa.mu.Unlock()
	if gone {
		return
	}
	if final == nil {
		if u, err := p.x.QuerySA(sa.id); err == nil {
			final = &u
		}
	}
	if final != nil {
		c := &t.tx
		if sa.dir == ipsec.Inbound {
			c = &t.rx
		}
		c.Packets.Add(final.Packets)
		c.Bytes.Add(final.Bytes)
	}
	if err := p.x.DeleteSA(sa.id); err != nil && !errors.Is(err, kernel.ErrNoSA) {
		g.log.Warn("delete SA", "tunnel", t.String(), "err", err)
	}
	g.x.mu.Lock()
	if g.x.sas[sa.key()] == sa {
		delete(g.x.sas, sa.key())
	}
	g.x.mu.Unlock()
	t.mu.Lock()
	t.xin = withoutX(t.xin, sa)
	t.xouts = withoutX(t.xouts, sa)
	t.mu.Unlock()
	g.log.Info("SA deleted", "tunnel", t.String(), "spi", fmt.Sprintf("0x%08x", sa.id.SPI), "dir", sa.dir.String())
}

func withoutX(l []*xfrmSA, sa *xfrmSA) []*xfrmSA {
	for i, x := range l {
		if x == sa {
			return append(l[:i], l[i+1:]...)
		}
	}
	return l
}

// xfrmUsage asks the kernel what an SA carried. The kernel does not report
// the last use of ESP SAs (Linux 6.1), so LastUsed is when a query last saw
// the packet count grow.
func (p *xfrmPath) usage(sa *xfrmSA) (kernel.SAUsage, time.Time, error) {
	u, err := p.x.QuerySA(sa.id)
	if err != nil {
		return u, time.Time{}, err
	}
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if u.Packets > sa.packets {
		sa.packets, sa.lastUsed = u.Packets, time.Now()
	}
	last := sa.lastUsed
	if u.LastUsed.After(last) {
		last = u.LastUsed
	}
	return u, last, nil
}

// xfrmStatus is `show ipsec sa` for a kernel SA, with the kernel's counters.
func xfrmStatus(t *Tunnel, p *xfrmPath, sa *xfrmSA) SAStatus {
	s := SAStatus{
		Tunnel: t.String(), Direction: sa.dir.String(), SPI: fmt.Sprintf("0x%08x", sa.id.SPI),
		Protocol: sa.id.Protocol.String(), Transform: sa.t.Name(), Mode: ipsec.Tunnel.String(),
		Source: sa.src.String(), Destination: sa.id.Dst.String(), State: "active",
		Driver: xfrmDriverText, ESN: sa.esn, Created: sa.created, Drops: map[string]uint64{},
	}
	u, last, err := p.usage(sa)
	if err != nil {
		s.State = "unknown: " + err.Error()
	}
	s.Packets, s.Bytes, s.LastUsed = u.Packets, u.Bytes, last
	if u.ReplayDrops > 0 {
		s.Drops["replay"] = uint64(u.ReplayDrops)
	}
	if u.IntegrityFailures > 0 {
		s.Drops["icv-failure"] = uint64(u.IntegrityFailures)
	}
	if sa.dir == ipsec.Inbound {
		s.ReplayWindow = sa.replay
	} else {
		// Each packet sent took one sequence number.
		s.Seq = u.Packets
	}
	s.Lifetime = "none (manual SA)"
	if l := sa.lifetime; l.Hard.Time > 0 || l.Hard.Bytes > 0 {
		s.Lifetime = kernelLifetimeText(l, sa.created, u.Bytes)
	}
	return s
}

func kernelLifetimeText(l ipsec.Limits, created time.Time, bytes uint64) string {
	var parts []string
	if l.Hard.Time > 0 {
		parts = append(parts, fmt.Sprintf("%ds left", max(0, int((l.Hard.Time-time.Since(created)).Seconds()))))
	}
	if l.Hard.Bytes > 0 {
		parts = append(parts, fmt.Sprintf("%d KB left", (l.Hard.Bytes-min(l.Hard.Bytes, bytes))/1024))
	}
	return strings.Join(parts, ", ") + " (kernel limits)"
}

// xfrmTraffic adds the live kernel SAs' counters to a tunnel's status.
func xfrmTraffic(s *TunnelStatus, sas []SAStatus) {
	for _, sa := range sas {
		d := &s.Outbound
		if sa.Direction == ipsec.Inbound.String() {
			d = &s.Inbound
		}
		d.Packets += sa.Packets
		d.Bytes += sa.Bytes
		for k, v := range sa.Drops {
			if d.Drops == nil {
				d.Drops = map[string]uint64{}
			}
			d.Drops[k] += v
		}
	}
}

// xfrmSignaledDelete deletes an SA IKE asked to delete; a tunnel left
// without SAs one way is down until IKE negotiates new ones.
func (g *Gateway) xfrmSignaledDelete(sa *xfrmSA) {
	t := sa.tun
	p := t.xf.Load()
	if p == nil {
		return
	}
	g.xfrmDelete(t, p, sa, nil)
	t.mu.Lock()
	empty := len(t.xin) == 0 || len(t.xouts) == 0
	t.mu.Unlock()
	if empty {
		g.changeState(t, false, "no SAs: negotiating")
	}
}

// xfrmSignaledFallback moves a signaled tunnel whose SA install faulted to
// the lookaside datapath: its interface goes on the TUN device, and IKE
// hears that the SAs the kernel held are gone, so that it negotiates new
// ones. It returns why the lookaside interface failed, or "".
func (g *Gateway) xfrmSignaledFallback(t *Tunnel, err error) string {
	sas := g.xfrmFallback(t, err)
	reason := g.lookasideInterface(t)
	g.post(func() {
		if d := g.ike.Load(); d != nil {
			for _, sa := range sas {
				d.Expire(sa.id, true)
			}
		}
	})
	g.changeState(t, false, "SAs moved to the lookaside datapath: negotiating")
	g.post(func() { g.mu.Lock(); g.syncRoutes(); g.mu.Unlock() })
	return reason
}
