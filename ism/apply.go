package ism

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// apply makes the running state match cfg; g.mu is held. Each tunnel is
// all or nothing: one whose VRs cannot be opened keeps its old self (or
// stays out), and the others go on; a tunnel that cannot come up is down
// with the reason. The tunnel maps are always published. The errors of
// tunnels, traps and IKE are joined.
func (g *Gateway) apply(cfg *config.Config) error {
	g.applying = cfg
	g.look.SetWorkers(cfg.Dataplane.Workers)
	rawChanged := g.cfg != nil && g.cfg.Dataplane.RawTransport != cfg.Dataplane.RawTransport
	g.eps.SetRawMode(transport.RawMode(cfg.Dataplane.RawTransport))
	var errs []error
	if g.cfg != nil && g.cfg.Dataplane.UDPSockets != cfg.Dataplane.UDPSockets {
		errs = append(errs, g.removeAll())
	}
	g.eps.SetUDPMode(transport.UDPMode(cfg.Dataplane.UDPSockets))
	g.syncGroups(cfg)
	g.publishVIPs()
	// The endpoints of tunnels removed are released once IKE has heard
	// of the new configuration: the deletes it sends for a removed
	// tunnel's SAs leave from the removed tunnel's endpoint.
	var release []*transport.Endpoint
	for _, tc := range cfg.Tunnels {
		old := g.tunnels[tc.Name]
		if old != nil && old.conf().Equal(tc) && !g.leavesDatapath(old, cfg) && !(rawChanged && tc.UDPEncapPort == 0) {
			old.cfg.Store(tc) // the same settings, the new file's positions
			continue
		}
		op, err := g.vr(tc.OperationalVR)
		var tr *vr.VR
		if err == nil {
			tr, err = g.vr(tc.TransportVR)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("ism: %s: %w", tc, err))
			continue
		}
		if old != nil {
			g.log.Info("tunnel changed: rebuilding", "tunnel", old.String())
			g.teardown(old) // its sockets open anew: a change of raw transport needs that
		}
		g.tunnels[tc.Name] = g.setup(tc, op, tr, cfg)
	}
	wanted := make(map[string]bool, len(cfg.Tunnels))
	for _, tc := range cfg.Tunnels {
		wanted[tc.Name] = true
	}
	for name, t := range g.tunnels {
		if !wanted[name] {
			g.log.Info("tunnel removed", "tunnel", t.String())
			release = append(release, g.dismantle(t))
			delete(g.tunnels, name)
		}
	}
	g.cfg = cfg
	g.publish()
	errs = append(errs, g.configureTraps(cfg.SNMP), g.configureIKE(cfg))
	for _, ep := range release {
		g.eps.Release(ep)
	}
	g.syncRoutes()
	for name, v := range g.vrs {
		if !g.vrUsed(v) {
			v.Close()
			delete(g.vrs, name)
		}
	}
	return errors.Join(errs...)
}

func (g *Gateway) vrUsed(v *vr.VR) bool {
	for _, t := range g.tunnels {
		if t.op() == v || t.tr() == v {
			return true
		}
	}
	return false
}

// vr returns the open VR, opening it on first use.
func (g *Gateway) vr(c config.VR) (*vr.VR, error) {
	if v, ok := g.vrs[c.Name]; ok {
		return v, nil
	}
	v, err := vr.Open(c.Name, c.Netns)
	if err != nil {
		return nil, err
	}
	g.vrs[c.Name] = v
	return v, nil
}

// publish makes the tunnels visible to IKE's calls and the datapaths'
// events, which do not take g.mu.
func (g *Gateway) publish() {
	n := make(map[string]*Tunnel, len(g.tunnels))
	for _, t := range g.tunnels {
		n[t.Name] = t
	}
	g.byName.Store(&n)
}

// tunnelByName returns a tunnel without taking g.mu.
func (g *Gateway) tunnelByName(name string) *Tunnel { return (*g.byName.Load())[name] }

// leavesDatapath reports whether an unchanged tunnel must be rebuilt
// because its datapath cannot carry it under cfg: a policy route given to
// a tunnel on XFRM, say.
func (g *Gateway) leavesDatapath(t *Tunnel, cfg *config.Config) bool {
	t.mu.Lock()
	dp := g.dps[t.dp]
	t.mu.Unlock()
	spec := datapath.Tunnel{}
	g.describe(&spec, t.conf(), cfg)
	return dp.Supports(&spec) != nil
}

// describe fills in what a datapath knows of a tunnel's configuration.
func (g *Gateway) describe(d *datapath.Tunnel, tc *config.Tunnel, cfg *config.Config) {
	d.Name, d.Signaled, d.Mode = tc.Name, tc.Type == config.Signaled, tc.Mode
	d.Local, d.Remote = tc.LocalSelector, tc.RemoteSelector
	if !d.Local.Valid() {
		d.Local = selector.AnyOf(tc.TunnelSource)
	}
	if !d.Remote.Valid() {
		d.Remote = selector.AnyOf(tc.TunnelSource)
	}
	d.Source, d.Destination, d.Backup = tc.TunnelSource, tc.TunnelDestination.Addr, tc.BackupDestination.Addr.IsValid()
	d.UDPPort, d.Driver, d.ReplayWindow = tc.UDPEncapPort, string(tc.Driver), tc.ReplayWindow
	if grp := g.groupOf(tc.Name); grp != nil {
		d.Fence = grp.may
	}
	for _, p := range []netip.Prefix{tc.Address, tc.Address6} {
		if p.IsValid() {
			d.Addresses = append(d.Addresses, p)
		}
	}
	for _, r := range cfg.PolicyRoutes {
		d.PolicyRoutes = d.PolicyRoutes || r.Tunnel == tc.Name
	}
	switch {
	case d.Signaled:
		d.Transforms = tc.TransformSet.Transforms
	case tc.Inbound == nil || tc.Outbound == nil:
	case tc.Inbound.Transform == tc.Outbound.Transform:
		d.Transforms = []transform.Transform{tc.Outbound.Transform}
	default:
		d.Transforms = []transform.Transform{tc.Outbound.Transform, tc.Inbound.Transform}
	}
}

// setup builds a tunnel in its VRs. It never fails: a tunnel that cannot
// come up is down with the reason.
func (g *Gateway) setup(tc *config.Tunnel, op, tr *vr.VR, cfg *config.Config) *Tunnel {
	t := &Tunnel{Name: tc.Name, d: &datapath.Tunnel{Op: op, Transport: tr},
		dest: tc.TunnelDestination.Addr}
	t.cfg.Store(tc)
	g.describe(t.d, tc, cfg)
	t.d.Endpoint = g.eps.Get(tr, tc.TunnelSource)
	if grp := g.groupOf(tc.Name); grp != nil && !grp.active {
		t.standby = true
		t.setState(g.clock, false, fmt.Sprintf("standby: cluster group %s runs on another node", grp.cfg.Name))
		return t
	}
	t.setState(g.clock, false, "starting")
	if err := g.build(t); err != nil {
		t.setState(g.clock, false, err.Error())
		g.log.Warn("tunnel down", "tunnel", t.String(), "reason", err)
	}
	t.computeMTU()
	return t
}

// errTransportVR is why a transport-mode tunnel cannot come up in one VR.
var errTransportVR = errors.New("transport mode needs an operational VR other than the transport VR")

// build puts the tunnel on a datapath with, for a manual tunnel, its SAs,
// and for a signaled one the IKE sockets; it returns why the tunnel cannot
// come up.
func (g *Gateway) build(t *Tunnel) error {
	if t.d.Mode == ipsec.Transport && t.op() == t.tr() {
		return errTransportVR
	}
	if err := g.openPath(t, 0); err != nil {
		return err
	}
	if t.signaled() {
		if err := g.openIKE(t); err != nil {
			return err
		}
		resuming := g.pending != nil && g.pending.tunnels[t.Name] != nil
		if resuming {
			g.pending.signaled = append(g.pending.signaled, t)
		}
		if t.d.Destination.IsValid() {
			if err := g.checkPath(t); err != nil {
				return err
			}
		}
		// A tunnel resuming from a checkpoint gets its routes once
		// resumeSignaled has installed its SAs and IKE imported its IKE
		// SA (or chose to renegotiate): a packet routed in before would
		// start a new IKE SA beside the one being imported.
		if !resuming {
			t.setReady(true)
		}
		if t.d.Destination.IsValid() {
			t.setState(g.clock, false, "no SAs yet: negotiated on the first packet")
		} else {
			t.setState(g.clock, false, "no SAs yet: the peer starts them (the destination is known only by its identity)")
		}
		return nil
	}
	if err := g.checkPath(t); err != nil {
		return err
	}
	g.changeState(t, true, "")
	g.log.Info("tunnel up", "tunnel", t.String(), "transform", t.transform().Name(), "datapath", g.dps[t.dp].Name())
	return nil
}

// openPath puts the tunnel on the first datapath from g.dps[from] on that
// supports it and takes it, with a manual tunnel's SAs. A datapath that
// faults is counted and the next one tried; the last takes every tunnel.
func (g *Gateway) openPath(t *Tunnel, from int) error {
	for i := from; i < len(g.dps); i++ {
		dp := g.dps[i]
		err := dp.Supports(t.d)
		var u *datapath.Unsupported
		switch {
		case errors.Is(err, datapath.ErrNotAsked):
			continue
		case errors.As(err, &u):
			t.setDatapathWhy(u.Reason)
			if u.Asked {
				g.fallbacks[dp.Name()+"-unavailable"].Add(1)
				g.log.Warn("tunnel falls back to another datapath", "tunnel", t.String(), "datapath", dp.Name(), "reason", u.Reason)
			} else {
				g.log.Info("tunnel not on a datapath", "tunnel", t.String(), "datapath", dp.Name(), "reason", u.Reason)
			}
			continue
		case err != nil:
			return err
		}
		p, err := dp.Open(t.d)
		if err == nil && !t.signaled() {
			if err = g.addManual(t, p); err != nil {
				p.Close()
			}
		}
		if err != nil && i < len(g.dps)-1 {
			g.fellBack(t, dp, err)
			continue
		}
		if err != nil {
			return err
		}
		t.mu.Lock()
		closed := t.closed
		if !closed {
			t.dp, t.path = int32(i), p
		}
		t.mu.Unlock()
		if closed {
			p.Close()
			return errClosed
		}
		g.log.Info("tunnel datapath", "tunnel", t.String(), "datapath", dp.Name())
		return nil
	}
	return errors.New("ism: no datapath takes the tunnel")
}

// fellBack counts and shows a datapath that could not keep a tunnel.
func (g *Gateway) fellBack(t *Tunnel, dp datapath.Datapath, err error) {
	if errors.Is(err, datapath.ErrUnsupported) {
		g.fallbacks[dp.Name()+"-unavailable"].Add(1)
	} else {
		g.fallbacks[dp.Name()+"-fault"].Add(1)
	}
	t.setDatapathWhy("fallback: " + err.Error())
	g.log.Error("datapath fault: tunnel moves to the next datapath", "tunnel", t.String(), "datapath", dp.Name(), "err", err)
}

// addManual installs a manual tunnel's two SAs on p: resumed from its
// checkpoint when there is one that fits, else afresh.
func (g *Gateway) addManual(t *Tunnel, p datapath.Path) error {
	if rec, written := g.pending.take(t.Name); rec != nil {
		if done, err := g.resumeManual(t, p, rec, written, g.pending.policy); done || err != nil {
			return err
		}
	}
	tc := t.conf()
	for _, c := range []*config.SA{tc.Inbound, tc.Outbound} {
		sa := &datapath.SA{ID: ipsec.SAID{Dst: t.dest, SPI: c.SPI, Protocol: c.Transform.Protocol}, Direction: c.Direction,
			Transform: c.Transform, Src: tc.TunnelSource, UDPEncap: tc.UDPEncapPort != 0, SrcPort: tc.UDPEncapPort, DstPort: tc.UDPEncapPort,
			CipherKey: c.CipherKey.Clone(), AuthKey: c.AuthKey.Clone(), ESN: tc.ESN}
		if c.Direction == ipsec.Inbound {
			sa.Src, sa.ID.Dst = t.dest, tc.TunnelSource
		}
		if err := p.AddSA(sa); err != nil {
			return fmt.Errorf("%s SA 0x%08x: %w", c.Direction, c.SPI, err)
		}
		g.seam.register(sa.ID, t, c.Direction)
	}
	return nil
}

// openIKE opens the IKE sockets of a signaled tunnel's endpoint: UDP 500
// and the NAT-T port.
func (g *Gateway) openIKE(t *Tunnel) error {
	natt := t.conf().UDPEncapPort
	if natt == 0 {
		natt = header.NATTPort
	}
	for _, port := range []uint16{transport.IKEPort, natt} {
		if _, err := t.d.Endpoint.Socket(transport.UDP, port); err != nil {
			return err
		}
	}
	return nil
}

// checkPath looks the destination up in the transport VR: a tunnel whose
// destination is not routable is down, and the route's MTU sets the
// tunnel's. It returns why the destination is not routable.
func (g *Gateway) checkPath(t *Tunnel) error {
	dest := t.destination()
	rt, err := t.tr().Netlink.Lookup(dest)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.routable = false
		err = fmt.Errorf("destination %s is not routable in transport VR %s: %w", dest, t.tr().Name, err)
		t.reason = err.Error()
		return err
	}
	t.routable, t.pathMTU = true, rt.MTU
	return nil
}

// removeAll removes every tunnel, as a configuration without them would:
// IKE deletes their SAs, telling the peers, and the endpoints are released,
// so that their sockets close and apply sets the tunnels up anew on new
// ones (`dataplane udp-sockets` changed).
func (g *Gateway) removeAll() error {
	none := *g.cfg
	none.Tunnels = nil
	err := g.configureIKE(&none)
	for name, t := range g.tunnels {
		g.log.Info("dataplane udp-sockets changed: rebuilding", "tunnel", t.String())
		g.teardown(t)
		delete(g.tunnels, name)
	}
	return err
}

// teardown deletes the tunnel's path (its SAs, interface and addresses)
// and releases its endpoint.
func (g *Gateway) teardown(t *Tunnel) { g.eps.Release(g.dismantle(t)) }

// dismantle deletes the tunnel's path (its SAs, interface and addresses)
// and returns its endpoint, still held, for the caller to release.
func (g *Gateway) dismantle(t *Tunnel) *transport.Endpoint {
	t.setState(g.clock, false, "removed")
	t.mu.Lock()
	p := t.path
	t.path, t.closed = nil, true
	ids := t.sas
	t.sas = nil
	t.mu.Unlock()
	if p != nil {
		p.Close()
	}
	for id := range ids.all() {
		g.seam.forget(id, t)
	}
	return t.d.Endpoint
}

// moveDatapath moves a tunnel whose datapath could not take an SA to the
// next datapath: the old path and its SAs go, IKE hears that those SAs
// expired so that it negotiates new ones, and the routes follow.
func (g *Gateway) moveDatapath(t *Tunnel, cause error) error {
	t.mu.Lock()
	i, p := int(t.dp), t.path
	last := i == len(g.dps)-1 || t.closed
	if !last {
		t.path = nil
	}
	old := t.sas
	if !last {
		t.sas = nil
	}
	t.mu.Unlock()
	if last {
		return cause
	}
	g.fellBack(t, g.dps[i], cause)
	if p != nil {
		p.Close()
	}
	for id := range old.all() {
		g.seam.forget(id, t)
	}
	err := g.openPath(t, i+1)
	g.post(func() {
		if d := g.daemon(); d != nil {
			for id := range old.all() {
				d.Expire(id, true)
			}
		}
	})
	g.changeState(t, false, "SAs moved to another datapath: negotiating")
	g.post(func() { g.mu.Lock(); g.syncRoutes(); g.mu.Unlock() })
	return err
}
