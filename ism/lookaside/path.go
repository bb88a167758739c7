package lookaside

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// outboundGrace is how long an outbound SA replaced by a rekey lives on for
// the packets already on their way through it.
const outboundGrace = 500 * time.Millisecond

// path is a tunnel on the lookaside datapath: its interface is on the
// operational VR's TUN device, its SAs in the engine.
type path struct {
	d   *Datapath
	t   *datapath.Tunnel
	id  uint64 // the engine's cookie for the tunnel's SAs
	dev *device

	// out is the outbound SA packets are sent with; nil when there is none.
	out atomic.Pointer[offload.SA]
	// txSock is the transport socket outbound packets leave by, and
	// txHow what show says of it.
	txSock atomic.Pointer[transport.Socket]
	txHow  atomic.Pointer[string]
	// hold keeps the packets that wait for the first outbound SA.
	hold holdQueue

	mu     sync.Mutex
	in     []*offload.SA // inbound SAs (two during a rekey)
	outs   []*offload.SA // outbound SAs still installed
	closed bool
}

// AddSA installs an SA in the engine, opening the endpoint's socket it
// arrives on or leaves by. The newest outbound SA is the one packets take.
func (p *path) AddSA(sa *datapath.SA) error { return p.addSA(sa, nil) }

// ResumeSA installs an SA as AddSA does, its state continuing r.
func (p *path) ResumeSA(sa *datapath.SA, r offload.Resume) error { return p.addSA(sa, &r) }

// addSA is AddSA, resuming the SA's state when r is set.
func (p *path) addSA(sa *datapath.SA, r *offload.Resume) error {
	defer sa.CipherKey.Zero()
	defer sa.AuthKey.Zero()
	t := p.t
	kind, port := transport.ESP, uint16(0)
	switch {
	case sa.Transform.Protocol == transform.AH:
		kind = transport.AH
	case sa.UDPEncap:
		kind, port = transport.UDP, sa.SrcPort
		if sa.Direction == ipsec.Inbound {
			port = sa.DstPort
		}
	}
	var s *transport.Socket
	var err error
	how := fmt.Sprintf("UDP socket %s, port %d", t.Endpoint.Local(), port)
	if kind != transport.UDP && sa.Direction == ipsec.Outbound {
		s, how, err = t.Endpoint.RawSocket(kind, sa.ID.Dst)
	} else {
		s, err = t.Endpoint.Socket(kind, port)
	}
	if err != nil {
		return err
	}
	c := offload.SAConfig{
		SPI: sa.ID.SPI, Transform: sa.Transform, Direction: sa.Direction, Mode: t.Mode, Src: sa.Src, Dst: sa.ID.Dst,
		UDPEncap: sa.UDPEncap, SrcPort: sa.SrcPort, DstPort: sa.DstPort, CipherKey: sa.CipherKey, AuthKey: sa.AuthKey,
		ESN: sa.ESN, ReplayWindow: t.ReplayWindow, Limits: sa.Limits, Driver: t.Driver, Cookie: p.id,
	}
	if sa.UDPEncap {
		c.Framing = offload.FrameESP // the UDP socket writes the IP and UDP headers
	}
	if c.ID() != sa.ID {
		return fmt.Errorf("lookaside: SA %s is not %s", sa.ID, c.ID())
	}
	if sa.Direction == ipsec.Outbound {
		// After p.mu is unlocked: the held packets leave on the new SA.
		defer p.d.releaseAfter(p, sa.ReleaseDelay)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("lookaside: tunnel closed")
	}
	var osa *offload.SA
	if r != nil {
		osa, err = p.d.eng.ResumeSA(c, *r)
	} else {
		osa, err = p.d.eng.AddSA(c)
	}
	if err != nil {
		return err
	}
	if sa.Direction == ipsec.Inbound {
		p.in = append(p.in, osa)
		return nil
	}
	p.outs = append(p.outs, osa)
	p.txSock.Store(s)
	p.txHow.Store(&how)
	p.out.Store(osa)
	return nil
}

// DeleteSA removes an SA. An outbound SA a rekey replaced goes a moment
// later, for the packets that took it before the switch and may still be in
// a burst.
func (p *path) DeleteSA(id ipsec.SAID) error {
	p.mu.Lock()
	sa := p.find(id)
	if sa == nil {
		p.mu.Unlock()
		return fmt.Errorf("%w %s", datapath.ErrNoSA, id)
	}
	p.in = slices.DeleteFunc(p.in, func(x *offload.SA) bool { return x == sa })
	p.outs = slices.DeleteFunc(p.outs, func(x *offload.SA) bool { return x == sa })
	replaced := false
	if p.out.Load() == sa {
		var next *offload.SA
		if n := len(p.outs); n > 0 {
			next = p.outs[n-1]
		}
		p.out.Store(next)
	} else {
		replaced = sa.Direction() == ipsec.Outbound
	}
	p.mu.Unlock()
	if replaced {
		p.d.deleteLater(id)
		return nil
	}
	return p.d.eng.DeleteSA(id)
}

// Checkpoint returns the path's SAs with their keys and sequence state.
func (p *path) Checkpoint() ([]datapath.SAState, error) {
	p.mu.Lock()
	sas := slices.Concat(p.in, p.outs)
	p.mu.Unlock()
	out := make([]datapath.SAState, 0, len(sas))
	for _, osa := range sas {
		ck, ak, err := osa.Keys()
		if errors.Is(err, offload.ErrNoSA) {
			continue // deleted meanwhile
		}
		c := osa.Config()
		out = append(out, datapath.SAState{
			SA: datapath.SA{ID: osa.ID(), Direction: c.Direction, Transform: c.Transform, Src: c.Src, UDPEncap: c.UDPEncap,
				SrcPort: c.SrcPort, DstPort: c.DstPort, CipherKey: ck, AuthKey: ak, ESN: c.ESN, Limits: c.Limits},
			Mode: c.Mode, ReplayWindow: c.ReplayWindow, Snapshot: osa.Snapshot()})
	}
	return out, nil
}

// find returns the path's SA with identity id, or nil; p.mu is held.
func (p *path) find(id ipsec.SAID) *offload.SA {
	for _, sa := range slices.Concat(p.in, p.outs) {
		if sa.ID() == id {
			return sa
		}
	}
	return nil
}

// QuerySA returns an SA's counters and last use.
func (p *path) QuerySA(id ipsec.SAID) (datapath.Usage, error) {
	p.mu.Lock()
	sa := p.find(id)
	p.mu.Unlock()
	if sa == nil {
		return datapath.Usage{}, fmt.Errorf("%w %s", datapath.ErrNoSA, id)
	}
	c := sa.Counters()
	return datapath.Usage{Bytes: c.Bytes.Load(), Packets: c.Packets.Load(), LastUsed: sa.LastUsed()}, nil
}

// Link is the operational VR's TUN device.
func (p *path) Link() vr.Link { return vr.Link{Index: p.dev.index, Device: p.dev} }

// Status shows the device, the outbound SA's driver and the SAs.
func (p *path) Status() datapath.Status {
	s := datapath.Status{Datapath: p.d.Name(), Interface: TUNName}
	if sa := p.out.Load(); sa != nil {
		s.Driver, s.DriverReason = sa.Driver()
		if how := p.txHow.Load(); how != nil {
			s.Transport = *how
		}
	}
	p.mu.Lock()
	sas := slices.Concat(p.in, p.outs)
	p.mu.Unlock()
	name := "ipsec:" + p.t.Name
	for _, sa := range sas {
		s.SAs = append(s.SAs, saStatus(name, sa))
	}
	return s
}

// Close deletes the SAs at once and takes the addresses off the device.
func (p *path) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.out.Store(nil)
	sas := slices.Concat(p.in, p.outs)
	p.in, p.outs = nil, nil
	p.mu.Unlock()
	d := p.d
	for _, sa := range sas {
		if err := d.eng.DeleteSA(sa.ID()); err != nil && !errors.Is(err, offload.ErrNoSA) {
			d.log.Warn("delete SA", "tunnel", p.t.Name, "err", err)
		}
	}
	for _, a := range p.t.Addresses {
		_ = p.t.Op.Netlink.DelAddr(p.dev.index, a)
	}
	d.mu.Lock()
	if d.paths[p.t] == p {
		delete(d.paths, p.t)
		d.publish()
	}
	d.release(p.dev)
	d.mu.Unlock()
}

func saStatus(tunnel string, sa *offload.SA) datapath.SAStatus {
	c := sa.Config()
	name, reason := sa.Driver()
	v := sa.Counters().Snapshot()
	s := datapath.SAStatus{
		Tunnel: tunnel, Direction: c.Direction.String(), SPI: fmt.Sprintf("0x%08x", c.SPI),
		Protocol: c.Transform.Protocol.String(), Transform: c.Transform.Name(), Mode: c.Mode.String(),
		Source: c.Src.String(), Destination: c.Dst.String(), UDPEncap: c.UDPEncap, State: sa.State(),
		Driver: name, DriverReason: reason, Seq: sa.Seq(), ESN: c.ESN, Packets: v.Packets, Bytes: v.Bytes,
		Drops: v.DropMap(), Created: sa.Created(), LastUsed: sa.LastUsed(), Lifetime: lifetimeText(c.Limits.Hard, sa.Created(), v.Bytes),
	}
	if c.Direction == ipsec.Inbound {
		s.ReplayWindow = c.ReplayWindow
	}
	return s
}

// lifetimeText describes what is left of an SA's hard lifetime.
func lifetimeText(hard ipsec.Lifetime, created time.Time, bytes uint64) string {
	if t := datapath.LifetimeLeft(hard, created, bytes); t != "" {
		return t
	}
	return "none (manual SA)"
}
