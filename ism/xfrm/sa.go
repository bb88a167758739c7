package xfrm

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ismgw/ism/driver/kernel"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/transform"
)

// path is a tunnel on the XFRM datapath: its interface, policies and SAs.
type path struct {
	d        *Datapath
	t        *datapath.Tunnel
	c        *conn
	ifID     uint32
	name     string // the XFRM interface
	index    uint32 // its index in the operational VR
	policies []kernel.Policy
	why      string

	mu     sync.Mutex
	sas    []*sa
	closed bool
}

// sa is an SA the kernel holds for a tunnel. It keeps no keys: they went
// to the kernel and were wiped with the request.
type sa struct {
	p       *path
	id      ipsec.SAID
	src     netip.Addr
	dir     ipsec.Direction
	t       transform.Transform
	esn     bool
	replay  int
	limits  ipsec.Limits
	created time.Time

	mu       sync.Mutex
	packets  uint64    // the kernel's count at the last query
	lastUsed time.Time // when a query last saw the count grow
	deleted  bool
}

// addPolicies installs the tunnel's policies: out, in and fwd for its
// selectors, bound to its interface. Traffic of the other family (an IPv6
// router solicitation, say) finds no policy and goes nowhere, as the
// selectors make it on the lookaside datapath.
func (p *path) addPolicies() error {
	t := p.t
	proto := t.Transforms[0].Protocol
	for _, sel := range policySelectors(t) {
		for _, dir := range []kernel.PolicyDir{kernel.PolicyOut, kernel.PolicyIn, kernel.PolicyFwd} {
			pol := kernel.Policy{Src: sel[0], Dst: sel[1], Dir: dir, IfID: p.ifID, ReqID: p.ifID,
				TunnelSrc: t.Source, TunnelDst: t.Destination, Protocol: proto, Mode: ipsec.Tunnel}
			if dir != kernel.PolicyOut {
				pol.Src, pol.Dst = sel[1], sel[0]
				pol.TunnelSrc, pol.TunnelDst = t.Destination, t.Source
			}
			if err := p.c.x.AddPolicy(&pol); err != nil {
				return err
			}
			p.policies = append(p.policies, pol)
		}
	}
	return nil
}

// AddSA installs an SA in the kernel with its keys, bound to the tunnel's
// interface. ESP in UDP is not XFRM's here, nor an SA with selectors of
// its own (the tunnel's one policy each way would send every packet to
// whichever of its SAs the kernel finds first): both wrap ErrUnsupported,
// and the tunnel moves to the lookaside datapath.
func (p *path) AddSA(in *datapath.SA) error {
	defer in.CipherKey.Zero()
	defer in.AuthKey.Zero()
	if in.Narrowed() {
		return fmt.Errorf("%w: IKE negotiated a child SA for %s, narrower than the tunnel's selectors; a tunnel's child SAs with selectors of their own run on the lookaside datapath",
			datapath.ErrUnsupported, datapath.SelectorsText(in.Local, in.Remote))
	}
	if in.UDPEncap {
		return fmt.Errorf("%w: IKE negotiated UDP encapsulation (NAT traversal), which runs on the lookaside datapath", datapath.ErrUnsupported)
	}
	s := &sa{p: p, id: in.ID, src: in.Src, dir: in.Direction, t: in.Transform, esn: in.ESN, replay: p.t.ReplayWindow, limits: in.Limits}
	c := &kernel.SAConfig{Src: in.Src, Mode: ipsec.Tunnel, Transform: in.Transform, CipherKey: in.CipherKey, AuthKey: in.AuthKey,
		Inbound: in.Direction == ipsec.Inbound, ReplayWindow: s.replay, ESN: s.esn, ReqID: p.ifID, IfID: p.ifID, Limits: in.Limits}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fault(errors.New("tunnel closed"))
	}
	if err := p.c.x.AddSA(in.ID, c); err != nil {
		return fault(err)
	}
	s.created = time.Now()
	p.sas = append(p.sas, s)
	p.d.mu.Lock()
	p.d.sas[s.id] = s
	p.d.mu.Unlock()
	p.d.log.Info("SA installed", "tunnel", p.t.Name, "spi", fmt.Sprintf("0x%08x", s.id.SPI), "dir", s.dir.String(), "driver", DriverText)
	return nil
}

// DeleteSA deletes an SA from the kernel; the tunnel's counters keep what
// it carried.
func (p *path) DeleteSA(id ipsec.SAID) error {
	s := p.find(id)
	if s == nil {
		return fmt.Errorf("%w %s", datapath.ErrNoSA, id)
	}
	p.delete(s, nil)
	return nil
}

// find returns the path's SA with identity id, or nil.
func (p *path) find(id ipsec.SAID) *sa {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.IndexFunc(p.sas, func(s *sa) bool { return s.id == id }); i >= 0 {
		return p.sas[i]
	}
	return nil
}

// delete deletes an SA from the kernel and from the path, whose tunnel's
// counters keep what it carried: final, when the kernel has already
// deleted it (at its hard limit) and said what it carried, else what a
// query finds.
func (p *path) delete(s *sa, final *kernel.SAUsage) {
	s.mu.Lock()
	gone := s.deleted
	s.deleted = true
	s.mu.Unlock()
	if gone {
		return
	}
	if final == nil {
		if u, err := p.c.x.QuerySA(s.id); err == nil {
			final = &u
		}
	}
	if final != nil {
		c := &p.t.TX
		if s.dir == ipsec.Inbound {
			c = &p.t.RX
		}
		c.Packets.Add(final.Packets)
		c.Bytes.Add(final.Bytes)
	}
	if err := p.c.x.DeleteSA(s.id); err != nil && !errors.Is(err, kernel.ErrNoSA) {
		p.d.log.Warn("delete SA", "tunnel", p.t.Name, "err", err)
	}
	p.d.mu.Lock()
	if p.d.sas[s.id] == s {
		delete(p.d.sas, s.id)
	}
	p.d.mu.Unlock()
	p.mu.Lock()
	p.sas = slices.DeleteFunc(p.sas, func(x *sa) bool { return x == s })
	p.mu.Unlock()
	p.d.log.Info("SA deleted", "tunnel", p.t.Name, "spi", fmt.Sprintf("0x%08x", s.id.SPI), "dir", s.dir.String())
}

// QuerySA asks the kernel what an SA carried.
func (p *path) QuerySA(id ipsec.SAID) (datapath.Usage, error) {
	s := p.find(id)
	if s == nil {
		return datapath.Usage{}, fmt.Errorf("%w %s", datapath.ErrNoSA, id)
	}
	u, last, err := p.usage(s)
	return datapath.Usage{Bytes: u.Bytes, Packets: u.Packets, LastUsed: last}, err
}

// usage asks the kernel what an SA carried. The kernel does not report
// the last use of ESP SAs (Linux 6.1), so the last use is when a query last
// saw the packet count grow.
func (p *path) usage(s *sa) (kernel.SAUsage, time.Time, error) {
	u, err := p.c.x.QuerySA(s.id)
	if err != nil {
		return u, time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.Packets > s.packets {
		s.packets, s.lastUsed = u.Packets, time.Now()
	}
	last := s.lastUsed
	if u.LastUsed.After(last) {
		last = u.LastUsed
	}
	return u, last, nil
}

// Link is the tunnel's XFRM interface.
func (p *path) Link() vr.Link { return vr.Link{Index: p.index, Device: p} }

// Status shows the XFRM interface and the kernel's SAs, whose counters
// add to the tunnel's.
func (p *path) Status() datapath.Status {
	s := datapath.Status{Datapath: p.d.Name(), Interface: p.name, Driver: DriverText, DriverReason: p.why, Reason: p.why}
	p.mu.Lock()
	sas := slices.Clone(p.sas)
	p.mu.Unlock()
	for _, x := range sas {
		st := p.status(x)
		s.SAs = append(s.SAs, st)
		d := &s.Out
		if x.dir == ipsec.Inbound {
			d = &s.In
		}
		d.Add(datapath.Traffic{Packets: st.Packets, Bytes: st.Bytes, Drops: st.Drops})
	}
	return s
}

// status is `show ipsec sa` for a kernel SA, with the kernel's counters.
func (p *path) status(s *sa) datapath.SAStatus {
	st := datapath.SAStatus{
		Tunnel: "ipsec:" + p.t.Name, Direction: s.dir.String(), SPI: fmt.Sprintf("0x%08x", s.id.SPI),
		Protocol: s.id.Protocol.String(), Transform: s.t.Name(), Mode: ipsec.Tunnel.String(),
		Source: s.src.String(), Destination: s.id.Dst.String(), State: "active",
		Driver: DriverText, ESN: s.esn, Created: s.created, Drops: map[string]uint64{},
	}
	u, last, err := p.usage(s)
	if err != nil {
		st.State = "unknown: " + err.Error()
	}
	st.Packets, st.Bytes, st.LastUsed = u.Packets, u.Bytes, last
	if u.ReplayDrops > 0 {
		st.Drops["replay"] = uint64(u.ReplayDrops)
	}
	if u.IntegrityFailures > 0 {
		st.Drops["icv-failure"] = uint64(u.IntegrityFailures)
	}
	if s.dir == ipsec.Inbound {
		st.ReplayWindow = s.replay
	} else {
		// Each packet sent took one sequence number.
		st.Seq = u.Packets
	}
	st.Lifetime = "none (manual SA)"
	if t := datapath.LifetimeLeft(s.limits.Hard, s.created, u.Bytes); t != "" {
		st.Lifetime = t + " (kernel limits)"
	}
	return st
}

// Close deletes the tunnel's kernel SAs, policies and interface.
func (p *path) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	sas := slices.Clone(p.sas)
	p.mu.Unlock()
	for _, s := range sas {
		p.delete(s, nil)
	}
	for i := range p.policies {
		if err := p.c.x.DeletePolicy(&p.policies[i]); err != nil && !errors.Is(err, kernel.ErrNoSA) {
			p.d.log.Warn("delete XFRM policy", "tunnel", p.t.Name, "err", err)
		}
	}
	if p.index != 0 {
		if err := p.t.Op.Netlink.DeleteLink(p.index); err != nil {
			p.d.log.Warn("delete XFRM interface", "tunnel", p.t.Name, "interface", p.name, "err", err)
		}
	}
	p.d.mu.Lock()
	delete(p.d.paths, p)
	p.d.mu.Unlock()
	p.d.release(p.t.Transport)
}
