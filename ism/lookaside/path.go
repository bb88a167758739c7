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

	// outs are the outbound SAs packets choose from (sas.go); never nil.
	outs atomic.Pointer[outTable]
	// ins are the inbound SAs with selectors of their own; nil if none.
	ins atomic.Pointer[inTable]
	// hold keeps the packets that wait for an outbound SA to cover them.
	hold holdQueue

	mu     sync.Mutex
	in     []saEntry // inbound SAs (two during a rekey)
	out    []saEntry // outbound SAs still installed
	seq    uint32    // SAs installed so far (beside closed: the struct fits 176 bytes, TestEntrySize)
	closed bool
}

// AddSA installs an SA in the engine, opening the endpoint's socket it
// arrives on or leaves by. Of outbound SAs with the same selectors, the
// newest is the one packets take; the held packets it covers leave on it
// after sa.ReleaseDelay.
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
	var how string // a UDP socket's is made when shown (path.how)
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
	p.seq++
	e := saEntry{sa: osa, sock: s, how: how, port: port, width: tunnelWidth, seq: uint64(p.seq)}
	if sa.Narrowed() {
		e.setSelectors(sa.Local, sa.Remote)
	}
	if sa.Direction == ipsec.Inbound {
		p.in = append(p.in, e)
	} else {
		e.held = new(atomic.Bool)
		p.hold.await(e.held)                  // before the SA is published
		p.out = append(slices.Clip(p.out), e) // a new array: outTable may share the old one
	}
	p.publish()
	return nil
}

// publish rebuilds the tables the packet path reads; p.mu is held.
func (p *path) publish() {
	p.outs.Store(newOutTable(p.out))
	p.ins.Store(newInTable(p.in))
}

// DeleteSA removes an SA. An outbound SA a rekey replaced (another with
// its selectors is installed) goes a moment later, for the packets that
// took it before the switch and may still be in a burst.
func (p *path) DeleteSA(id ipsec.SAID) error {
	p.mu.Lock()
	e, ok := p.find(id)
	if !ok {
		p.mu.Unlock()
		return fmt.Errorf("%w %s", datapath.ErrNoSA, id)
	}
	p.in = slices.DeleteFunc(p.in, func(x saEntry) bool { return x.sa == e.sa })
	// Not in place: the published outTable may share p.out's array.
	p.out = slices.DeleteFunc(slices.Clone(p.out), func(x saEntry) bool { return x.sa == e.sa })
	replaced := e.sa.Direction() == ipsec.Outbound &&
		slices.ContainsFunc(p.out, func(x saEntry) bool { return x.sameSelectors(&e) })
	p.publish()
	p.mu.Unlock()
	if replaced {
		p.d.deleteLater(id)
		return nil
	}
	return p.d.eng.DeleteSA(id)
}

// Checkpoint returns the path's SAs with their keys, selectors and
// sequence state.
func (p *path) Checkpoint() ([]datapath.SAState, error) {
	p.mu.Lock()
	sas := slices.Concat(p.in, p.out)
	p.mu.Unlock()
	out := make([]datapath.SAState, 0, len(sas))
	for _, e := range sas {
		osa := e.sa
		ck, ak, err := osa.Keys()
		if errors.Is(err, offload.ErrNoSA) {
			continue // deleted meanwhile
		}
		c := osa.Config()
		local, remote := e.selectors()
		out = append(out, datapath.SAState{
			SA: datapath.SA{ID: osa.ID(), Direction: c.Direction, Transform: c.Transform, Src: c.Src, UDPEncap: c.UDPEncap,
				SrcPort: c.SrcPort, DstPort: c.DstPort, CipherKey: ck, AuthKey: ak, ESN: c.ESN, Limits: c.Limits,
				Local: local, Remote: remote},
			Mode: c.Mode, ReplayWindow: c.ReplayWindow, Snapshot: osa.Snapshot()})
	}
	return out, nil
}

// find returns the path's SA with identity id; p.mu is held.
func (p *path) find(id ipsec.SAID) (saEntry, bool) {
	for _, e := range slices.Concat(p.in, p.out) {
		if e.sa.ID() == id {
			return e, true
		}
	}
	return saEntry{}, false
}

// QuerySA returns an SA's counters and last use.
func (p *path) QuerySA(id ipsec.SAID) (datapath.Usage, error) {
	p.mu.Lock()
	e, ok := p.find(id)
	p.mu.Unlock()
	if !ok {
		return datapath.Usage{}, fmt.Errorf("%w %s", datapath.ErrNoSA, id)
	}
	sa := e.sa
	c := sa.Counters()
	return datapath.Usage{Bytes: c.Bytes.Load(), Packets: c.Packets.Load(), LastUsed: sa.LastUsed()}, nil
}

// how says which socket an SA's packets use, for show.
func (p *path) how(e *saEntry) string {
	if e.how != "" {
		return e.how
	}
	return fmt.Sprintf("UDP socket %s, port %d", p.t.Endpoint.Local(), e.port)
}

// Link is the operational VR's TUN device.
func (p *path) Link() vr.Link { return vr.Link{Index: p.dev.index, Device: p.dev} }

// Status shows the device, the outbound SA's driver and the SAs.
func (p *path) Status() datapath.Status {
	s := datapath.Status{Datapath: p.d.Name(), Interface: TUNName}
	if e := p.outs.Load().first(); e != nil {
		s.Driver, s.DriverReason = e.sa.Driver()
		s.Transport = p.how(e)
	}
	p.mu.Lock()
	sas := slices.Concat(p.in, p.out)
	p.mu.Unlock()
	name := "ipsec:" + p.t.Name
	for _, e := range sas {
		st := saStatus(name, e.sa)
		st.Selectors = datapath.SelectorsText(e.selectors())
		s.SAs = append(s.SAs, st)
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
	sas := slices.Concat(p.in, p.out)
	p.in, p.out = nil, nil
	p.publish()
	p.mu.Unlock()
	d := p.d
	for _, e := range sas {
		if err := d.eng.DeleteSA(e.sa.ID()); err != nil && !errors.Is(err, offload.ErrNoSA) {
			d.log.Warn("delete SA", "tunnel", p.t.Name, "err", err)
		}
	}
	for _, a := range p.t.Addresses {
		_ = p.t.Op.Netlink.DelAddr(p.dev.index, a)
	}
	d.mu.Lock()
	if d.paths[p.t] == p {
		delete(d.paths, p.t)
		d.unpublished = true
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
