package transport

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/ism/vr"
)

// UDPMode is how the UDP sockets of a VR's endpoints (IKE on port 500, IKE
// and ESP in UDP on the NAT-T port) are opened.
type UDPMode string

// UDP modes.
const (
	// UDPWildcard opens one socket per port, address family and VR,
	// bound to the unspecified address and shared by the VR's endpoints:
	// each datagram's local address comes with it (IP_PKTINFO,
	// IPV6_RECVPKTINFO) and each sent one names its source in an
	// IP_PKTINFO or IPV6_PKTINFO control message, as charon does. A VR
	// with thousands of tunnel sources needs two sockets, not two per
	// source, and an address that comes later (a cluster VIP taken over)
	// needs no socket of its own.
	UDPWildcard UDPMode = "wildcard"
	// UDPPerAddress binds a socket pair to each endpoint's address: for
	// a VR whose ports 500 and 4500 another IKE daemon uses on addresses
	// of its own, which a wildcard socket would keep from binding.
	UDPPerAddress UDPMode = "per-address"
)

// wildBuffer is the send and receive buffer asked for a wildcard socket: it
// takes what arrives for every address of its VR.
const wildBuffer = 4 * socketBuffer

// oobSize holds the control messages a UDP read may bring: the GRO
// segment size and the datagram's local address.
var oobSize = unix.CmsgSpace(4) + unix.CmsgSpace(unix.SizeofInet6Pktinfo)

// wildKey names a wildcard socket: its VR, address family and port.
type wildKey struct {
	vr   *vr.VR
	v6   bool
	port uint16
}

// wildSocket is a VR's wildcard socket on one port and the views of it the
// endpoints hold. Its refs are guarded by Endpoints.mu.
type wildSocket struct {
	key  wildKey
	s    *Socket
	refs int
}

// SetUDPMode sets how the UDP sockets asked for from now on are opened; the
// sockets open stay as they are until their endpoints close.
func (e *Endpoints) SetUDPMode(m UDPMode) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.udp = m
}

// openUDP opens ep's UDP socket on port: a view of its VR's wildcard
// socket, or in UDPPerAddress mode a socket bound to its address. ep.mu is
// held; the read loop of a socket it opens is running.
func (ep *Endpoint) openUDP(port uint16) (*Socket, error) {
	e := ep.set
	local := netip.AddrPortFrom(ep.key.local, port)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, errClosed
	}
	if e.udp == UDPPerAddress {
		e.wg.Add(1)
		e.mu.Unlock()
		s, err := openSocket(ep.key.vr.NS, UDP, local)
		if err != nil {
			e.wg.Done()
			return nil, err
		}
		go e.loop(s)
		return s, nil
	}
	k := wildKey{ep.key.vr, ep.key.local.Is6(), port}
	w, ok := e.wild[k]
	if !ok {
		// Opened under e.mu: an endpoint of the VR asking for the same
		// port meanwhile must find it, not open a second.
		s, err := openWildcard(ep.key.vr, k)
		if err != nil {
			e.mu.Unlock()
			return nil, err
		}
		w = &wildSocket{key: k, s: s}
		s.wild = w
		e.wild[k] = w
		e.wg.Add(1)
		go e.loop(s)
	}
	w.refs++
	e.mu.Unlock()
	return w.s.view(local), nil
}

// openWildcard opens the wildcard UDP socket k names, in its VR.
func openWildcard(v *vr.VR, k wildKey) (*Socket, error) {
	any := netip.IPv4Unspecified()
	if k.v6 {
		any = netip.IPv6Unspecified()
	}
	local := netip.AddrPortFrom(any, k.port)
	s, err := openSocket(v.NS, UDP, local)
	if err != nil {
		return nil, err
	}
	var serr error
	err = s.rc.Control(func(fd uintptr) {
		f := int(fd)
		_ = unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, wildBuffer)
		_ = unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, wildBuffer)
		if k.v6 {
			serr = unix.SetsockoptInt(f, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(f, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("transport: pktinfo on %s in %s: %w", local, v.Name, err)
	}
	return s, nil
}

// view returns an endpoint's view of wildcard socket s: local's socket,
// sending from local's address.
func (s *Socket) view(local netip.AddrPort) *Socket {
	v := &Socket{kind: UDP, local: local, base: s}
	if a := local.Addr(); a.Is6() {
		v.src = unix.PktInfo6(&unix.Inet6Pktinfo{Addr: a.As16()})
	} else {
		v.src = unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: a.As4()})
	}
	return v
}

// releaseView gives back the reference a view holds on its wildcard socket,
// which closes with the last one: under e.mu, so that the next endpoint to
// ask for the port binds once it is closed, not before.
func (e *Endpoints) releaseView(v *Socket) {
	w := v.base.wild
	e.mu.Lock()
	defer e.mu.Unlock()
	if w.refs--; w.refs > 0 {
		return
	}
	if e.wild[w.key] == w {
		delete(e.wild, w.key)
	}
	w.s.close()
}

// listening reports whether an endpoint of wildcard socket s's VR has a
// socket on s's port for local: a datagram to any other address of the VR
// is no tunnel's.
func (e *Endpoints) listening(s *Socket, local netip.Addr) bool {
	e.mu.Lock()
	ep := e.m[endpointKey{s.wild.key.vr, local}]
	e.mu.Unlock()
	return ep != nil && ep.lookup(UDP, s.wild.key.port) != nil
}

// parseOOB reads a UDP datagram's control messages: the segment size of a
// coalesced datagram (UDP_GRO; 0 for a single one) and the address it
// arrived on (IP_PKTINFO, IPV6_PKTINFO; invalid when absent).
func parseOOB(oob []byte) (seg int, dst netip.Addr) {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		switch {
		case h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= 4:
			seg = int(binary.NativeEndian.Uint32(data))
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// Addr, the header's destination; Spec_dst is the address
			// the route would answer from.
			dst = netip.AddrFrom4((*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0])).Addr)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			dst = netip.AddrFrom16((*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0])).Addr)
		}
		oob = rest
	}
	return seg, dst
}

// localOf returns where a datagram read on s arrived: s's own address, or
// on a wildcard socket the one its control messages name (invalid when
// they name none).
func (s *Socket) localOf(oob []byte) netip.AddrPort {
	if s.wild == nil {
		return s.local
	}
	_, dst := parseOOB(oob)
	if !dst.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(dst.Unmap(), s.local.Port())
}
