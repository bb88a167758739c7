package ring

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Sockets is the kernel's path for raw ESP and AH, as ism's transport sends
// today: an IPv4 and an IPv6 raw socket with the IP header included
// (IP_HDRINCL, IPV6_HDRINCL), written in batches with sendmmsg. The kernel
// routes, resolves neighbours, fragments and sends each packet through its
// IP output path. A Conn sends through it what its ring cannot take; the
// benchmark sets the ring against it. It is safe for concurrent use.
type Sockets struct {
	v4, v6 *ipv4.PacketConn // x/net's batch calls; the IPv6 one is an ip6 socket
	conns  [2]net.PacketConn

	mu   sync.Mutex // serialises Send's scratch
	msgs []ipv4.Message
	addr []net.IPAddr
	dsts [][16]byte
	bufs [][1][]byte
}

// OpenSockets opens the raw sockets in the caller's network namespace.
func OpenSockets() (*Sockets, error) {
	s := &Sockets{}
	// IPPROTO_RAW sockets only send: the kernel delivers them nothing.
	for i, nw := range []string{"ip4:255", "ip6:255"} {
		c, err := net.ListenIP(nw, nil)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("ring: raw %s socket: %w", nw, err)
		}
		s.conns[i] = c
		level, opt := unix.IPPROTO_IP, unix.IP_HDRINCL
		if i == 1 {
			level, opt = unix.IPPROTO_IPV6, unix.IPV6_HDRINCL
		}
		rc, err := c.SyscallConn()
		if err == nil {
			var serr error
			err = rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), level, opt, 1)
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
			})
			err = errors.Join(err, serr)
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("ring: raw %s socket: %w", nw, err)
		}
	}
	s.v4, s.v6 = ipv4.NewPacketConn(s.conns[0]), ipv4.NewPacketConn(s.conns[1])
	return s, nil
}

// Send sends whole IP packets (IPv4 or IPv6, header included) and returns
// how many went, with the first error. It does not keep pkts.
func (s *Sockets) Send(pkts [][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sent := 0
	for len(pkts) > 0 {
		// A run of one family goes out in one sendmmsg.
		v6 := len(pkts[0]) > 0 && pkts[0][0]>>4 == 6
		n := 0
		for n < len(pkts) && (len(pkts[n]) > 0 && pkts[n][0]>>4 == 6) == v6 {
			n++
		}
		k, err := s.sendRun(pkts[:n], v6)
		sent += k
		if err != nil {
			return sent, err
		}
		pkts = pkts[n:]
	}
	return sent, nil
}

func (s *Sockets) sendRun(pkts [][]byte, v6 bool) (int, error) {
	for len(s.msgs) < len(pkts) {
		s.msgs = append(s.msgs, ipv4.Message{})
		s.addr = append(s.addr, net.IPAddr{})
		s.dsts = append(s.dsts, [16]byte{})
		s.bufs = append(s.bufs, [1][]byte{})
	}
	ms := s.msgs[:len(pkts)]
	for i, p := range pkts {
		dst, ok := destination(p)
		if !ok {
			return i, fmt.Errorf("ring: packet %d is not an IP packet", i)
		}
		s.dsts[i] = dst.As16()
		ip := s.dsts[i][:]
		if dst.Is4() {
			ip = s.dsts[i][12:]
		}
		s.addr[i].IP = ip
		s.bufs[i][0] = p
		ms[i] = ipv4.Message{Buffers: s.bufs[i][:], Addr: &s.addr[i]}
	}
	pc := s.v4
	if v6 {
		pc = s.v6
	}
	sent := 0
	for sent < len(ms) {
		n, err := pc.WriteBatch(ms[sent:], 0)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return sent, err
		}
		sent += n
	}
	clear(s.bufs[:len(pkts)])
	return sent, nil
}

// Close closes the sockets.
func (s *Sockets) Close() error {
	var errs []error
	for _, c := range s.conns {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// destination returns an IP packet's destination address.
func destination(p []byte) (netip.Addr, bool) {
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		return netip.AddrFrom4([4]byte(p[16:20])), true
	case len(p) >= 40 && p[0]>>4 == 6:
		return netip.AddrFrom16([16]byte(p[24:40])), true
	}
	return netip.Addr{}, false
}
