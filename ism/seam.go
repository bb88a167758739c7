package ism

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// This file is the line card's side of the seam with IKE (ike/seam.go) and
// with the datapaths: the gateway installs the SAs IKE negotiates on the
// tunnel's path, whichever datapath it is (ike.Installer), sends IKE's
// messages from the tunnel endpoints' sockets (ike.Transport), hears about
// tunnel state from IKE (ike.Listener) and about SA events from the
// datapaths (datapath.Events). None of these take g.mu, so IKE and the
// datapaths may call them while the control plane calls them.

var (
	_ ike.Installer       = (*seam)(nil)
	_ ike.Transport       = (*seam)(nil)
	_ ike.KeepaliveSender = (*seam)(nil)
	_ ike.Listener        = (*seam)(nil)
	_ datapath.Events     = (*seam)(nil)
)

// seam is the gateway as IKE and the datapaths see it, and the index of
// every SA installed.
type seam struct {
	g *Gateway

	mu       sync.Mutex
	reserved map[ipsec.SAID]time.Time // SPIs handed out, not yet installed
	sas      map[ipsec.SAID]*Tunnel   // every SA installed, manual or signaled

	// expires count the datapaths' soft [0] and hard [1] expire events.
	expires [2]atomic.Uint64

	// keyHook, set only by tests, sees each SA IKE installs, keys
	// included, so that tshark can decrypt the capture. Nothing else can
	// read a signaled tunnel's keys (the seed).
	keyHook func(ipsec.SAID, ike.UserSA)
}

func newSeam(g *Gateway) *seam {
	return &seam{g: g, reserved: map[ipsec.SAID]time.Time{}, sas: map[ipsec.SAID]*Tunnel{}}
}

// register notes an SA installed on t's path.
func (s *seam) register(id ipsec.SAID, t *Tunnel, dir ipsec.Direction) {
	s.mu.Lock()
	s.sas[id] = t
	delete(s.reserved, id)
	s.mu.Unlock()
	t.mu.Lock()
	t.sas.add(id, dir)
	t.mu.Unlock()
}

// forget drops an SA of t from the index.
func (s *seam) forget(id ipsec.SAID, t *Tunnel) {
	s.mu.Lock()
	if s.sas[id] == t {
		delete(s.sas, id)
	}
	s.mu.Unlock()
	t.mu.Lock()
	t.sas.remove(id)
	t.mu.Unlock()
}

// tunnelOf returns the tunnel an SA is installed for, or nil.
func (s *seam) tunnelOf(id ipsec.SAID) *Tunnel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sas[id]
}

// AllocateSPI returns a random SPI above 255, unused for (SPI, protocol,
// local) by any SA installed and not handed out before.
func (s *seam) AllocateSPI(tunnel string, p transform.Protocol, local netip.Addr) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.g.clock.Now()
	for id, at := range s.reserved {
		if now.Sub(at) > 5*time.Minute {
			delete(s.reserved, id)
		}
	}
	var b [4]byte
	for range 1000 {
		rand.Read(b[:])
		id := ipsec.SAID{Dst: local, SPI: binary.BigEndian.Uint32(b[:]), Protocol: p}
		if _, used := s.reserved[id]; id.SPI < 256 || used || s.sas[id] != nil {
			continue
		}
		s.reserved[id] = now
		return id.SPI, nil
	}
	return 0, errors.New("ism: no free SPI")
}

// AddSA installs an SA IKE negotiated on its tunnel's path. A datapath
// that cannot take it (XFRM and ESP in UDP) moves the tunnel to the next
// one, where the SA goes, and IKE renegotiates the SAs the old one held.
// The keys are zeroed once the path holds its own copy.
func (s *seam) AddSA(id ipsec.SAID, u ike.UserSA) error {
	defer u.CipherKey.Zero()
	defer u.AuthKey.Zero()
	if s.keyHook != nil {
		s.keyHook(id, u)
	}
	g := s.g
	t := g.tunnelByName(u.Tunnel)
	if t == nil {
		return fmt.Errorf("ism: no tunnel %s", u.Tunnel)
	}
	if id.Dst != u.Dst {
		return fmt.Errorf("ism: SA %s destination is not %s", id, u.Dst)
	}
	dir := ipsec.Outbound
	if u.Inbound {
		dir = ipsec.Inbound
	}
	local, remote := u.Local, u.Remote
	if local.Is(t.d.Local) && remote.Is(t.d.Remote) {
		local, remote = nil, nil // the tunnel's own
	}
	sa := func() *datapath.SA {
		return &datapath.SA{ID: id, Direction: dir, Transform: u.Transform, Src: u.Src, UDPEncap: u.UDPEncap,
			SrcPort: u.SrcPort, DstPort: u.DstPort, CipherKey: u.CipherKey.Clone(), AuthKey: u.AuthKey.Clone(),
			ESN: u.ESN, Limits: ipsec.Limits{Soft: u.Soft, Hard: u.Hard}, ReleaseDelay: releaseDelay(t, u),
			Local: local, Remote: remote}
	}
	p := t.currentPath()
	if p == nil {
		return fmt.Errorf("ism: %s has no datapath", t)
	}
	err := p.AddSA(sa())
	if err != nil {
		if err = g.moveDatapath(t, err); err != nil {
			return fmt.Errorf("ism: %s: %w", t, err)
		}
		if p = t.currentPath(); p == nil {
			return fmt.Errorf("ism: %s has no datapath", t)
		}
		if err = p.AddSA(sa()); err != nil {
			return fmt.Errorf("ism: %s: %w", t, err)
		}
	}
	s.register(id, t, dir)
	t.mu.Lock()
	if !u.Inbound {
		t.dest = u.Dst
	}
	t.pfs, t.negotiated = u.PFSGroup, u.Transform
	complete := t.hasSAsLocked()
	t.mu.Unlock()
	if complete {
		// A tunnel whose routes DPD withdrew gets them back with its SAs.
		t.setReady(true)
		if g.changeState(t, true, "") {
			g.log.Info("tunnel up", "tunnel", t.String(), "peer", u.Dst.String(), "transform", u.Transform.Name())
			// Under g.mu, which syncTunnelRoutes needs: a reload changes the routes.
			g.post(func() { g.mu.Lock(); t.computeMTU(); g.syncTunnelRoutes(t); g.mu.Unlock() })
		}
	}
	return nil
}

// ikev1ReleaseDelay is how long the packets held for an IKEv1
// negotiation wait once the outbound SA is in, for the peer to install its
// inbound SA (and charon its routes) from the quick mode's last message,
// which nothing acknowledges (datapath.SA.ReleaseDelay). 200 ms was too
// short for a charon on a loaded machine: the first ping went to a peer
// without the SA.
const ikev1ReleaseDelay = time.Second

// releaseDelay is an SA's datapath.SA.ReleaseDelay.
func releaseDelay(t *Tunnel, u ike.UserSA) time.Duration {
	if u.Inbound || t.conf().IKEVersion != 1 {
		return 0
	}
	return ikev1ReleaseDelay
}

// DeleteSA removes an SA and zeroes its keys; a tunnel left without SAs one
// way is down until IKE negotiates new ones.
func (s *seam) DeleteSA(id ipsec.SAID) error {
	t := s.tunnelOf(id)
	if t == nil {
		return fmt.Errorf("ism: %w %s", datapath.ErrNoSA, id)
	}
	var err error
	if p := t.currentPath(); p != nil {
		err = p.DeleteSA(id)
	}
	s.forget(id, t)
	if !t.hasSAs() {
		s.g.changeState(t, false, "no SAs")
	}
	return err
}

// QuerySA returns what the data path counted for an SA.
func (s *seam) QuerySA(id ipsec.SAID) (ike.SAUsage, error) {
	t := s.tunnelOf(id)
	var p datapath.Path
	if t != nil {
		p = t.currentPath()
	}
	if p == nil {
		return ike.SAUsage{}, fmt.Errorf("ism: %w %s", datapath.ErrNoSA, id)
	}
	u, err := p.QuerySA(id)
	return ike.SAUsage{Bytes: u.Bytes, Packets: u.Packets, LastUsed: u.LastUsed}, err
}

// Send sends an IKE message from a tunnel endpoint's socket, with the
// non-ESP marker on the NAT-T port (RFC 3948 §2.2).
func (s *seam) Send(local, remote netip.AddrPort, msg []byte) error {
	if s.g.fencedAddr(local.Addr()) {
		return fmt.Errorf("ism: %s: %w", local, errFenced)
	}
	sk := s.g.eps.UDP(local)
	if sk == nil {
		return fmt.Errorf("ism: no IKE socket on %s", local)
	}
	if local.Port() != transport.IKEPort {
		msg = append(make([]byte, header.NonESPMarkerSize, header.NonESPMarkerSize+len(msg)), msg...)
	}
	return sk.WriteTo(msg, remote)
}

// SendKeepalive sends a NAT-keepalive (RFC 3948 §2.3).
func (s *seam) SendKeepalive(local, remote netip.AddrPort) error {
	if s.g.fencedAddr(local.Addr()) {
		return fmt.Errorf("ism: %s: %w", local, errFenced)
	}
	sk := s.g.eps.UDP(local)
	if sk == nil {
		return fmt.Errorf("ism: no IKE socket on %s", local)
	}
	return sk.WriteTo([]byte{0xff}, remote)
}

// Expired: a datapath's SA crossed a lifetime. The control goroutine
// handles it.
func (s *seam) Expired(id ipsec.SAID, hard bool, cause string) {
	if hard {
		s.expires[1].Add(1)
	} else {
		s.expires[0].Add(1)
	}
	s.g.post(func() { s.g.saExpired(id, hard, cause) })
}

// saExpired handles a lifetime event: IKE rekeys a signaled tunnel's SA.
// Manual SAs have no lifetimes; the event that reaches them is sequence
// exhaustion (or the kernel's hard limit), which takes the tunnel down.
func (g *Gateway) saExpired(id ipsec.SAID, hard bool, cause string) {
	t := g.seam.tunnelOf(id)
	if t == nil {
		return
	}
	g.log.Info("SA event", "tunnel", t.String(), "sa", id.String(), "hard", hard, "cause", cause)
	if p := t.currentPath(); hard && p != nil {
		if _, err := p.QuerySA(id); errors.Is(err, datapath.ErrNoSA) {
			g.seam.forget(id, t) // the datapath deleted it
		}
	}
	if t.signaled() {
		if d := g.daemon(); d != nil {
			d.Expire(id, hard)
		}
		return
	}
	if !hard {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.changeState(t, false, fmt.Sprintf("SA %s expired: %s", id, cause)) {
		g.log.Warn("tunnel down", "tunnel", t.String(), "reason", t.Reason())
		g.syncTunnelRoutes(t)
	}
}

// Acquire asks IKE for an SA for traffic of a signaled tunnel from src to
// dst that found none, at most every acquireEvery for the tunnel; IKE's
// own back-off puts off the negotiations that keep failing. The request
// goes through the gateway's acquirer goroutine, as the kernel's acquires
// go to charon over netlink: the data path never waits for IKE. Called in the
// secure interface's read loop, a storm of acquires (thousands of tunnels
// down after a peer's restart, each starting a phase 1 under IKE's lock)
// held the loop long enough for the device's queue to overflow with the
// packets of the tunnels that were up.
func (s *seam) Acquire(dt *datapath.Tunnel, src, dst netip.Addr) {
	t := s.g.tunnelByName(dt.Name)
	if t == nil || t.d != dt {
		return
	}
	now := s.g.clock.Now().UnixNano()
	last := t.acquired.Load()
	if now-last < int64(acquireEvery) || !t.acquired.CompareAndSwap(last, now) {
		return
	}
	s.g.acquires.post(func() {
		if d := s.g.daemon(); d != nil {
			d.AcquireFor(t.Name, src, dst)
		}
	})
}

// TunnelUp: IKE has SAs for the tunnel.
func (s *seam) TunnelUp(tunnel string, peer netip.AddrPort) {
	s.g.log.Info("IKE: tunnel up", "tunnel", "ipsec:"+tunnel, "peer", peer.String())
}

// TunnelDown: the tunnel lost its SAs.
func (s *seam) TunnelDown(tunnel, reason string) {
	if t := s.g.tunnelByName(tunnel); t != nil {
		s.g.changeState(t, false, reason)
	}
	s.g.log.Warn("IKE: tunnel down", "tunnel", "ipsec:"+tunnel, "reason", reason)
}

// NegotiationFailed: an IKE or quick-mode negotiation failed.
func (s *seam) NegotiationFailed(tunnel, reason string) {
	t := s.g.tunnelByName(tunnel)
	if t == nil {
		return
	}
	if !t.Up() {
		t.setState(s.g.clock, false, "negotiation failed: "+reason)
	}
	if h, ok := t.currentPath().(datapath.Holder); ok {
		h.DropHeld() // what waited for the negotiation
	}
	s.g.traps.Load().IKEFailure(t.String(), t.destination(), reason)
	s.g.log.Warn("IKE: negotiation failed", "tunnel", t.String(), "reason", reason)
}

// PeerDead: DPD declared the tunnel's peer dead (RFC 3706). IKE deletes the
// SAs; the gateway withdraws the tunnel's routes so that other paths take
// over, unless IKE fails over to a backup destination.
func (s *seam) PeerDead(tunnel string, peer netip.Addr, at time.Time) {
	g := s.g
	t := g.tunnelByName(tunnel)
	if t == nil {
		return
	}
	reason := fmt.Sprintf("dpd: peer %s dead at %s", peer, at.Format(time.TimeOnly))
	g.traps.Load().PeerDead(t.String(), peer, at)
	g.changeState(t, false, reason)
	t.mu.Lock()
	t.rareLocked().deadAt = at
	t.mu.Unlock()
	if !t.conf().BackupDestination.Addr.IsValid() {
		t.setReady(false)
		g.post(func() { g.mu.Lock(); g.syncTunnelRoutes(t); g.mu.Unlock() })
	}
	g.log.Warn("DPD: peer dead", "tunnel", t.String(), "peer", peer.String())
}

// Failover: IKE moved the tunnel to its other destination (the seed's
// two-way failover); its routes stay, or come back.
func (s *seam) Failover(tunnel string, from, to netip.Addr, reason string) {
	g := s.g
	t := g.tunnelByName(tunnel)
	if t == nil {
		return
	}
	t.mu.Lock()
	t.dest = to
	t.mu.Unlock()
	g.traps.Load().Failover(t.String(), from, to, reason)
	g.changeState(t, false, fmt.Sprintf("failover from %s to %s (%s): negotiating", from, to, reason))
	if t.setReady(true) {
		g.post(func() { g.mu.Lock(); g.syncRoutes(); g.mu.Unlock() })
	}
	g.log.Warn("tunnel failover", "tunnel", t.String(), "from", from.String(), "to", to.String(), "reason", reason)
}
