package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/netns"
	"github.com/ismgw/ism/offload/header"
)

// IKEPort is the IKE port (RFC 2408 §3.1); NAT-T uses the tunnel's UDP
// encapsulation port, 4500 by default.
const IKEPort = 500

// socketBuffer is the send and receive buffer size asked for each data-path
// socket, so that a burst of full-size packets fits.
const socketBuffer = 4 << 20

// Kind is what a socket carries.
type Kind uint8

// Kinds.
const (
	// ESP and AH are raw IP sockets: the kernel delivers whole IPv4
	// packets and takes whole ones (IP_HDRINCL, IPV6_HDRINCL).
	ESP Kind = iota
	AH
	// UDP carries IKE (port 500) or IKE and ESP in UDP (the NAT-T
	// port); the kernel writes and strips the IP and UDP headers.
	UDP
)

func (k Kind) String() string { return [...]string{"esp", "ah", "udp"}[k] }

// Socket is one socket of an endpoint, or an endpoint's view of its VR's
// wildcard UDP socket (its address's share of it). Reads and writes are
// batched with recvmmsg and sendmmsg. It is safe for concurrent use.
type Socket struct {
	kind  Kind
	local netip.AddrPort
	conn  net.PacketConn
	pc    *ipv4.PacketConn // the batch API; works on IPv6 sockets too
	// gso and gro say whether a UDP socket segments on send and coalesces
	// on receive; gso is turned off if the kernel refuses it.
	gso atomic.Bool
	gro bool
	// errq: an IPv6 raw socket with IPV6_RECVERR. The kernel lowers its
	// path MTU on an ICMPv6 packet too big about what a raw IPv6 socket
	// sent only when the socket asked for errors (rawv6_err; IPv4's
	// raw_err always does); the errors then queue on the socket's error
	// queue, which drainErrors empties.
	errq bool
	rc   syscall.RawConn
	// ring is set on a ring socket: an endpoint's raw ESP or AH sent
	// through the AF_XDP ring on one interface; it has no conn.
	ring *rawRing
	// base is set on an endpoint's view of a VR's wildcard UDP socket
	// (wildcard.go): the socket that has the file, which the view sends
	// through with src, the IP_PKTINFO or IPV6_PKTINFO control message
	// that picks the view's address as the source. A view has no conn.
	base *Socket
	src  []byte
	// wild is set on a wildcard socket: it reads with pktinfo, each
	// datagram's local address in a control message.
	wild *wildSocket
}

// fd returns the socket that has the file: the view's base, or s.
func (s *Socket) fd() *Socket {
	if s.base != nil {
		return s.base
	}
	return s
}

// Kind returns what the socket carries.
func (s *Socket) Kind() Kind { return s.kind }

// Local returns the address (and port) the socket is bound to; a view's
// are its endpoint's.
func (s *Socket) Local() netip.AddrPort { return s.local }

// openSocket opens a socket of the given kind bound to local, inside ns.
func openSocket(ns *netns.NS, kind Kind, local netip.AddrPort) (*Socket, error) {
	s := &Socket{kind: kind, local: local}
	v6 := local.Addr().Is6()
	err := ns.Do(func() error {
		var err error
		switch kind {
		case UDP:
			nw := "udp4"
			if v6 {
				nw = "udp6"
			}
			s.conn, err = net.ListenUDP(nw, net.UDPAddrFromAddrPort(local))
		default:
			proto := header.ProtoESP
			if kind == AH {
				proto = header.ProtoAH
			}
			nw := fmt.Sprintf("ip4:%d", proto)
			if v6 {
				nw = fmt.Sprintf("ip6:%d", proto)
			}
			s.conn, err = net.ListenIP(nw, &net.IPAddr{IP: vr.IP(local.Addr())})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("transport: %s socket on %s: %w", kind, local, err)
	}
	sc, err := s.conn.(syscall.Conn).SyscallConn()
	if err != nil {
		s.conn.Close()
		return nil, err
	}
	var serr error
	err = sc.Control(func(fd uintptr) {
		f := int(fd)
		_ = unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer)
		_ = unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer)
		switch {
		case kind == UDP:
			s.gro = local.Port() != IKEPort && enableGRO(f)
			s.gso.Store(local.Port() != IKEPort)
		case v6:
			serr = unix.SetsockoptInt(f, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, 1)
			if serr == nil {
				serr = unix.SetsockoptInt(f, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
				s.errq = true
			}
		default:
			serr = unix.SetsockoptInt(f, unix.IPPROTO_IP, unix.IP_HDRINCL, 1)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		s.conn.Close()
		return nil, fmt.Errorf("transport: %s socket on %s: %w", kind, local, err)
	}
	s.pc, s.rc = ipv4.NewPacketConn(s.conn), sc
	return s, nil
}

// drainErrors empties an errq socket's error queue (the ICMPv6 errors
// about what it sent, and its own refused sends) and returns how many
// errors it held.
func (s *Socket) drainErrors() int {
	n := 0
	_ = s.rc.Control(func(fd uintptr) {
		var buf [256]byte
		var oob [256]byte
		for n < 1024 {
			if _, _, _, _, err := unix.Recvmsg(int(fd), buf[:], oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT); err != nil {
				return
			}
			n++
		}
	})
	return n
}

func (s *Socket) close() error { return s.conn.Close() }

// readBatch reads up to len(ms) datagrams (recvmmsg).
func (s *Socket) readBatch(ms []ipv4.Message) (int, error) { return s.pc.ReadBatch(ms, 0) }

// writeBatch sends every message (sendmmsg), retrying short writes; it
// returns how many were sent before an error.
func (s *Socket) writeBatch(ms []ipv4.Message) (int, error) {
	s = s.fd()
	sent := 0
	for sent < len(ms) {
		n, err := s.pc.WriteBatch(ms[sent:], 0)
		if err != nil && s.errq {
			s.drainErrors() // a refused send queued its error
			if errors.Is(err, unix.ENOBUFS) {
				// A full device queue dropped it: without IPV6_RECVERR
				// the kernel says nothing of that, and neither do we.
				sent++
				continue
			}
		}
		if err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

// WriteTo sends one datagram to remote: an IKE message or a keepalive,
// from the socket's local address.
func (s *Socket) WriteTo(b []byte, remote netip.AddrPort) error {
	if s.base != nil {
		_, _, err := s.base.conn.(*net.UDPConn).WriteMsgUDPAddrPort(b, s.src, remote)
		return err
	}
	_, err := s.conn.WriteTo(b, net.UDPAddrFromAddrPort(remote))
	return err
}
