package ism

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/offload/header"
)

// socketBuffer is the send and receive buffer size asked for each data-path
// socket, so that a burst of full-size packets fits.
const socketBuffer = 4 << 20

// sock is one data-path socket of an endpoint: raw IP for ESP or AH (the
// kernel delivers whole IPv4 packets, and takes them whole with
// IP_HDRINCL/IPV6_HDRINCL), or UDP for ESP in UDP and IKE. Reads and writes
// are batched with recvmmsg and sendmmsg. Safe for concurrent use.
type sock struct {
	kind  sockKind
	local netip.AddrPort
	conn  net.PacketConn
	pc    *ipv4.PacketConn // the batch API; works on IPv6 sockets too
	// gso and gro say whether a UDP socket segments on send and coalesces
	// on receive; gso is turned off if the kernel refuses it.
	gso atomic.Bool
	gro bool
}

type sockKind uint8

const (
	sockESP sockKind = iota
	sockAH
	sockUDP
)

func (k sockKind) String() string { return [...]string{"esp", "ah", "udp"}[k] }

// openSock opens a socket of the given kind bound to local, inside ns.
func openSock(ns *netns, kind sockKind, local netip.AddrPort) (*sock, error) {
	s := &sock{kind: kind, local: local}
	v6 := local.Addr().Is6()
	err := ns.do(func() error {
		var err error
		switch kind {
		case sockUDP:
			nw := "udp4"
			if v6 {
				nw = "udp6"
			}
			s.conn, err = net.ListenUDP(nw, net.UDPAddrFromAddrPort(local))
		default:
			proto := header.ProtoESP
			if kind == sockAH {
				proto = header.ProtoAH
			}
			nw := fmt.Sprintf("ip4:%d", proto)
			if v6 {
				nw = fmt.Sprintf("ip6:%d", proto)
			}
			s.conn, err = net.ListenIP(nw, &net.IPAddr{IP: ipOf(local.Addr())})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ism: %s socket on %s: %w", kind, local, err)
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
		case kind == sockUDP:
			s.gro = local.Port() != IKEPort && enableGRO(f)
			s.gso.Store(local.Port() != IKEPort)
		case v6:
			serr = unix.SetsockoptInt(f, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, 1)
		default:
			serr = unix.SetsockoptInt(f, unix.IPPROTO_IP, unix.IP_HDRINCL, 1)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		s.conn.Close()
		return nil, fmt.Errorf("ism: %s socket on %s: %w", kind, local, err)
	}
	s.pc = ipv4.NewPacketConn(s.conn)
	return s, nil
}

func (s *sock) close() error { return s.conn.Close() }

// readBatch reads up to len(ms) datagrams (recvmmsg).
func (s *sock) readBatch(ms []ipv4.Message) (int, error) { return s.pc.ReadBatch(ms, 0) }

// writeBatch sends every message (sendmmsg), retrying short writes; it
// returns how many were sent before an error.
func (s *sock) writeBatch(ms []ipv4.Message) (int, error) {
	sent := 0
	for sent < len(ms) {
		n, err := s.pc.WriteBatch(ms[sent:], 0)
		if err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

// udpAddr converts for the net API.
func udpAddr(a netip.AddrPort) *net.UDPAddr { return net.UDPAddrFromAddrPort(a) }
