package ism

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// IKEPort is the IKE port (RFC 2408 §3.1); NAT-T uses the tunnel's UDP
// encapsulation port, 4500 by default.
const IKEPort = 500

// outboundGrace is how long an outbound SA replaced by a rekey lives on for
// the packets already on their way through it.
const outboundGrace = 500 * time.Millisecond

// acquireEvery limits how often the data path asks IKE to negotiate for a
// tunnel that has no SA.
const acquireEvery = 250 * time.Millisecond

// This file is ism's side of the seam with IKE (ike/seam.go): the Gateway
// installs the SAs IKE negotiates (ike.Installer), sends IKE's messages
// from the tunnel endpoints' sockets (ike.Transport) and hears about tunnel
// state (ike.Listener). None of these take g.mu, so IKE may call them while
// the control plane calls IKE.

var (
	_ ike.Installer       = (*seam)(nil)
	_ ike.Transport       = (*seam)(nil)
	_ ike.KeepaliveSender = (*seam)(nil)
	_ ike.Listener        = (*seam)(nil)
)

// seam is the Gateway as IKE sees it.
type seam struct {
	g *Gateway

	mu       sync.Mutex
	reserved map[ipsec.SAID]time.Time // SPIs handed out, not yet installed
	socks    map[netip.AddrPort]*sock

	// keyHook, set only by tests, sees each SA IKE installs, keys
	// included, so that tshark can decrypt the capture. Nothing else can
	// read a signaled tunnel's keys (the seed).
	keyHook func(ipsec.SAID, ike.UserSA)
}

// ikeConfig translates the configuration for the IKE daemon.
func ikeConfig(cfg *config.Config, g *Gateway) (ike.Config, error) {
	c := ike.Config{Logger: g.log.With("component", "ike"),
		Lifetime:         cfg.Lifetime,
		DPD:              cfg.DPD,
		FailoverHoldDown: holdDown(cfg.FailoverHoldDown)}
	for _, p := range cfg.IKEPolicies {
		ip := ike.Policy{Group: int(p.Group), Lifetime: p.Lifetime}
		ip.Encryption = map[config.IKEEncryption]ike.Encryption{config.IKEDES: ike.EncDES, config.IKE3DES: ike.Enc3DES,
			config.IKEAES128: ike.EncAES128, config.IKEAES192: ike.EncAES192, config.IKEAES256: ike.EncAES256}[p.Encryption]
		ip.Hash = map[config.IKEHash]ike.Hash{config.IKEMD5: ike.HashMD5, config.IKESHA1: ike.HashSHA1, config.IKESHA256: ike.HashSHA256}[p.Hash]
		ip.Auth = ike.AuthPSK
		if p.Authentication == config.RSASignatureAuth {
			ip.Auth = ike.AuthRSASig
		}
		c.Policies = append(c.Policies, ip)
	}
	for _, k := range cfg.PreSharedKeys {
		peer := k.Identity.Value
		if k.Addr.IsValid() {
			peer = k.Addr.String()
		}
		c.PreSharedKeys = append(c.PreSharedKeys, ike.PreSharedKey{Peer: peer, Key: k.Key.Clone()})
	}
	if cfg.Certificates.Local != "" {
		certs, err := loadCertificates(cfg.Certificates)
		if err != nil {
			return c, err
		}
		c.Certificates = certs
	}
	for _, t := range cfg.Tunnels {
		if t.Type != config.Signaled {
			continue
		}
		it := ike.Tunnel{
			Name: t.Name, Source: t.TunnelSource, Destination: t.TunnelDestination.Addr,
			Mode: ike.MainMode, TransformSet: t.TransformSet.Transforms, PFSGroup: int(t.PFSGroup),
			Lifetime:      t.Lifetime,
			LocalSelector: t.LocalSelector, RemoteSelector: t.RemoteSelector,
			UDPEncap: t.UDPEncapPort != 0, BackupDestination: t.BackupDestination.Addr,
			FailoverHoldDown: holdDown(t.FailoverHoldDown),
		}
		dpd := t.DPD
		it.DPD = &dpd
		if t.IKEMode == config.AggressiveMode {
			it.Mode = ike.AggressiveMode
		}
		var err error
		if it.LocalID, err = ikeIdentity(t.LocalIdentity); err == nil {
			it.RemoteID, err = ikeIdentity(t.RemoteIdentity)
		}
		if err != nil {
			return c, fmt.Errorf("%s: %w", t, err)
		}
		// The default remote identity is the destination's address; a
		// backup destination presents its own address.
		if t.BackupDestination.Addr.IsValid() && t.RemoteIdentity.Kind == config.IdentityAddress && t.RemoteIdentity.Addr == t.TunnelDestination.Addr {
			it.RemoteID = ike.Identity{}
		}
		if !it.LocalSelector.Valid() || !it.RemoteSelector.Valid() {
			any := anySelector(t.TunnelSource)
			if !it.LocalSelector.Valid() {
				it.LocalSelector = any
			}
			if !it.RemoteSelector.Valid() {
				it.RemoteSelector = any
			}
		}
		c.Tunnels = append(c.Tunnels, it)
	}
	return c, nil
}

// holdDown maps the configuration's hold-down (0: none) to IKE's (0: the
// default, negative: none).
func holdDown(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func ikeIdentity(id config.Identity) (ike.Identity, error) {
	switch id.Kind {
	case config.IdentityNone:
		return ike.Identity{}, nil
	case config.IdentityAddress:
		return ike.AddressIdentity(id.Addr), nil
	}
	return ike.ParseIdentity(id.Value)
}

// loadCertificates reads the PEM files of rsa-signature authentication.
func loadCertificates(c config.Certificates) (*ike.Certificates, error) {
	out := &ike.Certificates{}
	read := func(path string) ([]*pem.Block, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var blocks []*pem.Block
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			blocks = append(blocks, blk)
		}
		if len(blocks) == 0 {
			return nil, fmt.Errorf("%s: no PEM data", path)
		}
		return blocks, nil
	}
	certs := func(path string) ([]*x509.Certificate, error) {
		blocks, err := read(path)
		if err != nil {
			return nil, err
		}
		var out []*x509.Certificate
		for _, b := range blocks {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			out = append(out, c)
		}
		return out, nil
	}
	var err error
	if out.Chain, err = certs(c.Local); err != nil {
		return nil, fmt.Errorf("ism: local certificate: %w", err)
	}
	for _, ca := range c.CAs {
		cs, err := certs(ca)
		if err != nil {
			return nil, fmt.Errorf("ism: CA certificate: %w", err)
		}
		out.CAs = append(out.CAs, cs...)
	}
	blocks, err := read(c.Key)
	if err != nil {
		return nil, fmt.Errorf("ism: private key: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(blocks[0].Bytes)
	if err != nil {
		key, err = x509.ParsePKCS1PrivateKey(blocks[0].Bytes)
	}
	clear(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("ism: private key %s: %w", c.Key, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("ism: private key %s cannot sign", c.Key)
	}
	out.Key = signer
	return out, nil
}

// AllocateSPI returns a random SPI above 255, unused for (SPI, protocol,
// local) in the SA database and not handed out before.
func (s *seam) AllocateSPI(tunnel string, p transform.Protocol, local netip.Addr) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for id, at := range s.reserved {
		if now.Sub(at) > 5*time.Minute {
			delete(s.reserved, id)
		}
	}
	var b [4]byte
	for range 1000 {
		rand.Read(b[:])
		spi := binary.BigEndian.Uint32(b[:])
		id := ipsec.SAID{Dst: local, SPI: spi, Protocol: p}
		if spi < 256 || s.reserved[id] != (time.Time{}) || s.g.eng.LookupSA(ipsec.SAID{SPI: spi, Protocol: p, Dst: local}) != nil ||
			s.g.xfrmLookup(local, spi, p) != nil {
			continue
		}
		s.reserved[id] = now
		return spi, nil
	}
	return 0, errors.New("ism: no free SPI")
}

// AddSA installs an SA IKE negotiated. It takes the keys and zeroes them
// once the SA holds its own copy.
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
	c := offload.SAConfig{
		SPI: id.SPI, Transform: u.Transform, Mode: t.mode, Src: u.Src, Dst: u.Dst,
		UDPEncap: u.UDPEncap, SrcPort: u.SrcPort, DstPort: u.DstPort, CipherKey: u.CipherKey, AuthKey: u.AuthKey,
		ReplayWindow: t.cfg.ReplayWindow, Driver: string(t.cfg.Driver), Cookie: t.id,
		Limits: ipsec.Limits{Soft: u.Soft, Hard: u.Hard},
	}
	if u.Inbound {
		c.Direction = ipsec.Inbound
	}
	if id.Dst != c.Dst {
		return fmt.Errorf("ism: SA %08x destination %s is not %s", id.SPI, id.Dst, c.Dst)
	}
	if p := t.xf.Load(); p != nil {
		complete, err := false, errXFRMNATT
		if !u.UDPEncap {
			complete, err = g.xfrmAddSigned(t, p, id, u)
		}
		if err == nil {
			s.mu.Lock()
			delete(s.reserved, id)
			s.mu.Unlock()
			g.signaledInstalled(t, complete, u)
			return nil
		}
		// The tunnel moves to the lookaside datapath; this SA goes
		// there, and IKE renegotiates the ones the kernel held.
		if reason := g.xfrmSignaledFallback(t, err); reason != "" {
			return fmt.Errorf("ism: %s: %s", t, reason)
		}
	}
	var tx *sock
	if !u.Inbound {
		kind := sockESP
		if u.Transform.Protocol == transform.AH {
			kind = sockAH
		} else if u.UDPEncap {
			kind = sockUDP
		}
		var err error
		if tx, err = t.ep.socket(kind, u.SrcPort, func(sk *sock) { g.startInbound(sk, t.ep) }); err != nil {
			return err
		}
	} else if !u.UDPEncap {
		// Raw ESP or AH arrives on its own socket.
		kind := sockESP
		if u.Transform.Protocol == transform.AH {
			kind = sockAH
		}
		if _, err := t.ep.socket(kind, 0, func(sk *sock) { g.startInbound(sk, t.ep) }); err != nil {
			return err
		}
	}
	sa, err := g.eng.AddSA(c)
	s.mu.Lock()
	delete(s.reserved, id)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	t.mu.Lock()
	if u.Inbound {
		t.in = append(t.in, sa)
	} else {
		t.outs = append(t.outs, sa)
		t.dest = u.Dst
		t.txSock.Store(tx)
		t.out.Store(sa)
	}
	t.pfs, t.negotiated = u.PFSGroup, u.Transform
	complete := len(t.in) > 0 && len(t.outs) > 0
	t.mu.Unlock()
	g.signaledInstalled(t, complete, u)
	return nil
}

// signaledInstalled brings a signaled tunnel up once it has SAs both ways.
func (g *Gateway) signaledInstalled(t *Tunnel, complete bool, u ike.UserSA) {
	if complete {
		// A tunnel whose routes DPD withdrew gets them back with its SAs.
		t.ready.Store(true)
	}
	if complete && g.changeState(t, true, "") {
		g.log.Info("tunnel up", "tunnel", t.String(), "peer", u.Dst.String(), "transform", u.Transform.Name())
		g.post(func() { t.computeMTU(); g.mu.Lock(); g.syncTunnelRoutes(t); g.mu.Unlock() })
	}
}

// DeleteSA removes an SA and zeroes its keys; when the tunnel has no SA left
// in a direction it is down.
func (s *seam) DeleteSA(id ipsec.SAID) error {
	g := s.g
	if xsa := g.xfrmLookup(id.Dst, id.SPI, id.Protocol); xsa != nil {
		g.xfrmSignaledDelete(xsa)
		return nil
	}
	sa := g.eng.LookupSA(ipsec.SAID{SPI: id.SPI, Protocol: id.Protocol, Dst: id.Dst})
	if sa == nil {
		return fmt.Errorf("%w %s", offload.ErrNoSA, id.Dst)
	}
	replaced := false
	if t := g.tunnelByID(sa.Cookie()); t != nil {
		t.mu.Lock()
		t.in = without(t.in, sa)
		t.outs = without(t.outs, sa)
		if t.out.Load() == sa {
			var next *offload.SA
			if n := len(t.outs); n > 0 {
				next = t.outs[n-1]
			}
			t.out.Store(next)
		} else {
			replaced = sa.Direction() == ipsec.Outbound
		}
		empty := len(t.in) == 0 || len(t.outs) == 0
		t.mu.Unlock()
		if empty {
			g.changeState(t, false, "no SAs: negotiating")
		}
	}
	if replaced {
		// A rekey replaced this outbound SA: packets that took it before
		// the switch may still be in a burst. It goes a moment later.
		time.AfterFunc(outboundGrace, func() { _ = g.eng.DeleteSA(sa.ID()) })
		return nil
	}
	return g.eng.DeleteSA(sa.ID())
}

func without(l []*offload.SA, sa *offload.SA) []*offload.SA {
	for i, x := range l {
		if x == sa {
			return append(l[:i], l[i+1:]...)
		}
	}
	return l
}

// QuerySA returns what the data path counted for an SA.
func (s *seam) QuerySA(id ipsec.SAID) (ike.SAUsage, error) {
	if xsa := s.g.xfrmLookup(id.Dst, id.SPI, id.Protocol); xsa != nil {
		if p := xsa.tun.xf.Load(); p != nil {
			u, last, err := p.usage(xsa)
			return ike.SAUsage{Bytes: u.Bytes, Packets: u.Packets, LastUsed: last}, err
		}
	}
	sa := s.g.eng.LookupSA(ipsec.SAID{SPI: id.SPI, Protocol: id.Protocol, Dst: id.Dst})
	if sa == nil {
		return ike.SAUsage{}, offload.ErrNoSA
	}
	c := sa.Counters()
	return ike.SAUsage{Bytes: c.Bytes.Load(), Packets: c.Packets.Load(), LastUsed: sa.LastUsed()}, nil
}

// Send sends an IKE message from a tunnel endpoint's socket, with the
// non-ESP marker on the NAT-T port (RFC 3948 §2.2).
func (s *seam) Send(local, remote netip.AddrPort, msg []byte) error {
	sk := s.ikeSock(local)
	if sk == nil {
		return fmt.Errorf("ism: no IKE socket on %s", local)
	}
	if local.Port() != IKEPort {
		msg = append(make([]byte, header.NonESPMarkerSize, header.NonESPMarkerSize+len(msg)), msg...)
	}
	_, err := sk.conn.WriteTo(msg, udpAddr(remote))
	return err
}

// SendKeepalive sends a NAT-keepalive (RFC 3948 §2.3).
func (s *seam) SendKeepalive(local, remote netip.AddrPort) error {
	sk := s.ikeSock(local)
	if sk == nil {
		return fmt.Errorf("ism: no IKE socket on %s", local)
	}
	_, err := sk.conn.WriteTo([]byte{0xff}, udpAddr(remote))
	return err
}

func (s *seam) ikeSock(local netip.AddrPort) *sock {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.socks[local]
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
		t.setState(false, "negotiation failed: "+reason)
	}
	t.mu.Lock()
	dest := t.dest
	t.mu.Unlock()
	s.g.traps.Load().IKEFailure(t.String(), dest, reason)
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
	t.deadAt = at
	t.mu.Unlock()
	if !t.cfg.BackupDestination.Addr.IsValid() {
		t.ready.Store(false)
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
	if !t.ready.Swap(true) {
		g.post(func() { g.mu.Lock(); g.syncRoutes(); g.mu.Unlock() })
	}
	g.log.Warn("tunnel failover", "tunnel", t.String(), "from", from.String(), "to", to.String(), "reason", reason)
}

// openIKE opens the IKE sockets of a signaled tunnel's endpoint: UDP 500
// and the NAT-T port.
func (g *Gateway) openIKE(t *Tunnel) error {
	natt := t.cfg.UDPEncapPort
	if natt == 0 {
		natt = header.NATTPort
	}
	for _, port := range []uint16{IKEPort, natt} {
		sk, err := t.ep.socket(sockUDP, port, func(sk *sock) { g.startInbound(sk, t.ep) })
		if err != nil {
			return err
		}
		g.seam.mu.Lock()
		g.seam.socks[sk.local] = sk
		g.seam.mu.Unlock()
	}
	return nil
}

// acquire asks IKE for SAs for a signaled tunnel that has none, at most
// every acquireEvery.
func (g *Gateway) acquire(t *Tunnel) {
	now := time.Now().UnixNano()
	last := t.acquired.Load()
	if now-last < int64(acquireEvery) || !t.acquired.CompareAndSwap(last, now) {
		return
	}
	if d := g.ike.Load(); d != nil {
		d.Acquire(t.Name)
	}
}
