package v2

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"net/netip"

	"github.com/ismgw/ism/ike"
)

// NAT traversal (RFC 7296 §2.23). Each end puts two notifies in
// IKE_SA_INIT: NAT_DETECTION_SOURCE_IP, a SHA-1 of the SPIs as the header
// has them, its address and port, and NAT_DETECTION_DESTINATION_IP, the
// same of the address and port it sends to. A source hash that does not
// match what arrived means the sender is behind a NAT; a destination hash
// that does not match this end's own address means this end is. Then the
// initiator moves to port 4500 from IKE_AUTH on (the Transport adds the
// non-ESP marker), the child SAs carry ESP in UDP (RFC 3948), the end
// behind the NAT sends keepalives, and the other follows the peer's
// address and port when they change. A tunnel with UDPEncap set sends a
// source hash that cannot match, as strongSwan's encap option does, so
// that both ends encapsulate.

// natHash is the NAT detection hash of §2.23.
func natHash(spiI, spiR uint64, ap netip.AddrPort) []byte {
	h := sha1.New()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], spiI)
	binary.BigEndian.PutUint64(b[8:], spiR)
	h.Write(b[:])
	h.Write(ap.Addr().Unmap().AsSlice())
	binary.BigEndian.PutUint16(b[:2], ap.Port())
	h.Write(b[:2])
	return h.Sum(nil)
}

// natNotifies returns the two NAT detection notifies of a message from
// local to remote with the given SPIs; with fake set the source hash is
// one that cannot match.
func natNotifies(spiI, spiR uint64, local, remote netip.AddrPort, fake bool) []Payload {
	src := natHash(spiI, spiR, local)
	if fake {
		src = natHash(spiI, spiR, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	}
	return []Payload{
		{Type: PayloadNotify, Body: (&Notify{Type: NATDetectionSourceIP, Data: src}).marshal()},
		{Type: PayloadNotify, Body: (&Notify{Type: NATDetectionDestinationIP, Data: natHash(spiI, spiR, remote)}).marshal()},
	}
}

// detectNAT reads the peer's NAT detection notifies of a message that
// came from remote to local; found is false when the peer sent none (it
// does not do NAT traversal).
func detectNAT(m *Message, local, remote netip.AddrPort) (localNAT, remoteNAT, found bool) {
	ns, _ := m.Notifies()
	var srcOK, srcSeen, dstSeen bool
	dstOK := false
	for _, n := range ns {
		switch n.Type {
		case NATDetectionSourceIP:
			srcSeen = true
			srcOK = srcOK || hmac.Equal(n.Data, natHash(m.SPIi, m.SPIr, remote))
		case NATDetectionDestinationIP:
			dstSeen = true
			dstOK = dstOK || hmac.Equal(n.Data, natHash(m.SPIi, m.SPIr, local))
		}
	}
	if !srcSeen || !dstSeen {
		return false, false, false
	}
	return !dstOK, !srcOK, true
}

// float4500 moves the SA to port 4500 when a NAT was found or ESP-in-UDP
// is forced (§2.23). The SA's mutex must be held.
func (sa *ikeSA) float4500() {
	if sa.natt || !(sa.localNAT || sa.remoteNAT || sa.forceEncap) {
		return
	}
	sa.natt = true
	remote := sa.remote
	if remote.Port() == 500 {
		remote = netip.AddrPortFrom(remote.Addr(), 4500)
	}
	sa.setEndpoints(netip.AddrPortFrom(sa.local.Addr(), 4500), remote)
}

// setEndpoints changes the SA's addresses and ports, which the daemon also
// reads under Daemon.mu (findIKESA). The SA's mutex must be held.
func (sa *ikeSA) setEndpoints(local, remote netip.AddrPort) {
	sa.d.mu.Lock()
	sa.d.moveSALocked(sa, local, remote)
	sa.d.mu.Unlock()
}

// encap reports whether the SA's child SAs carry ESP in UDP.
func (sa *ikeSA) encap() bool { return sa.natt }

// armKeepalive sends NAT-T keepalives (RFC 3948 §2.3) while this end is
// behind a NAT. The SA's mutex must be held.
func (sa *ikeSA) armKeepalive() {
	ks, ok := sa.d.tr.(ike.KeepaliveSender)
	if !ok || !sa.localNAT || sa.keepalive != nil {
		return
	}
	sa.d.mu.Lock()
	every := sa.d.cfg.Keepalive
	sa.d.mu.Unlock()
	var tick func()
	tick = func() {
		sa.lock()
		defer sa.unlock()
		if sa.state == stateDead {
			return
		}
		local, remote := sa.local, sa.remote
		*sa.keepalive = sa.d.clk.AfterFunc(every, tick)
		sa.after(func() { _ = ks.SendKeepalive(local, remote) })
	}
	t := sa.d.clk.AfterFunc(every, tick)
	sa.keepalive = &t
}

// follow moves the SA, and its child SAs if the Installer can, to the
// address and port an authenticated message of the peer came from, when
// the peer is behind a NAT (§2.23: "... MUST update the address ... with
// the source of the newest authenticated message"). The SA's mutex must be
// held.
func (sa *ikeSA) follow(from netip.AddrPort) {
	if from == sa.remote || !sa.remoteNAT || !sa.natt {
		return
	}
	d := sa.d
	d.log.Info("peer moved", "from", sa.remote, "to", from)
	sa.setEndpoints(sa.local, from)
	up, ok := d.inst.(ike.EndpointUpdater)
	if !ok {
		return
	}
	local := sa.local
	for _, c := range sa.children {
		if !c.encap {
			continue
		}
		in, out := c.in, c.out
		sa.after(func() {
			_ = up.UpdateSAEndpoints(in, from, local)
			_ = up.UpdateSAEndpoints(out, local, from)
		})
	}
}
