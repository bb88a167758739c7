package transport

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
)

// loop is the receive side of one socket:
//
//  1. read a batch (recvmmsg); from UDP, hand IKE to the Handler and drop
//     keepalives, and give each ESP packet its outer addresses and ports
//     (the socket took the IP and UDP headers off);
//  2. give the ESP and AH packets to the socket's Receiver.
//
// One goroutine per socket runs it, until the socket closes.
func (e *Endpoints) loop(s *Socket) {
	defer e.wg.Done()
	r := e.h.NewReceiver()
	if s.kind == UDP && s.gro {
		e.loopGRO(s, r)
		return
	}
	n := offload.BurstSize
	pkts := make([]*offload.Packet, n)
	r.Alloc(pkts)
	msgs := make([]ipv4.Message, n)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{readBuf(pkts[i])}
	}
	work := make([]*offload.Packet, 0, n)
	for {
		k, err := s.readBatch(msgs)
		if err != nil {
			if e.readFailed(s, err) {
				return
			}
			continue
		}
		work = work[:0]
		for i := range k {
			pk := pkts[i]
			pk.Reset(msgs[i].N)
			switch from := msgs[i].Addr.(type) {
			case *net.UDPAddr:
				src := from.AddrPort()
				if e.control(s, src, pk.Buf.Bytes()) {
					continue
				}
				pk.Outer = offload.Outer{Src: unmap(src), Dst: s.local}
			case *net.IPAddr:
				if a, ok := netip.AddrFromSlice(from.IP); ok && s.local.Addr().Is6() && s.kind == ESP {
					// IPv6 raw sockets deliver no IP header.
					pk.Outer = offload.Outer{Src: netip.AddrPortFrom(a, 0), Dst: s.local}
				}
			default:
				continue
			}
			work = append(work, pk)
		}
		if len(work) > 0 {
			r.Receive(work)
		}
		for i := range k {
			if pkts[i].Buf == nil {
				r.Alloc(pkts[i : i+1])
				msgs[i].Buffers[0] = readBuf(pkts[i])
			}
		}
	}
}

// readFailed says whether a read loop ends: its socket closed. Other
// errors are logged, and the loop reads again a moment later.
func (e *Endpoints) readFailed(s *Socket, err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return true
	}
	e.log.Warn("transport socket read", "socket", s.local.String(), "kind", s.kind.String(), "err", err)
	time.Sleep(10 * time.Millisecond)
	return false
}

// readBuf is where a datagram is read into: the packet's buffer past the
// headroom the engine frames in.
func readBuf(pk *offload.Packet) []byte {
	return pk.Buf.Mem[offload.Headroom : offload.Headroom+driver.MaxPacket]
}

// loopGRO is loop for a UDP socket whose datagrams arrive coalesced: each
// read takes up to groMsgs runs of datagrams, which are split into packets
// and handed on a burst at a time.
func (e *Endpoints) loopGRO(s *Socket, r Receiver) {
	// Segments are copied out of the coalesced datagrams into packets
	// whose buffers can take a whole 64 KiB: the secure-interface device
	// coalesces a TCP flow's segments into the first one's buffer (GRO),
	// so that the kernel takes a flow's burst in one write.
	pkts := make([]*offload.Packet, offload.BurstSize)
	for i := range pkts {
		pkts[i] = bigPacket()
	}
	msgs := make([]ipv4.Message, groMsgs)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, groBufSize)}
		msgs[i].OOB = make([]byte, 2*cmsgSpace)
	}
	next := 0
	flush := func() {
		r.Receive(pkts[:next])
		for i := range next {
			if pkts[i].Buf == nil {
				pkts[i] = bigPacket()
			}
		}
		next = 0
	}
	for {
		k, err := s.readBatch(msgs)
		if err != nil {
			if e.readFailed(s, err) {
				return
			}
			continue
		}
		for i := range k {
			m := &msgs[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			from := ua.AddrPort()
			data := m.Buffers[0][:m.N]
			seg := groSize(m.OOB[:m.NN])
			if seg <= 0 {
				seg = len(data)
			}
			for off := 0; off < len(data); off += seg {
				d := data[off:min(off+seg, len(data))]
				if e.control(s, from, d) {
					continue
				}
				if len(d) > driver.MaxPacket {
					r.Drop(offload.DropTooBig)
					continue
				}
				pk := pkts[next]
				pk.Reset(len(d))
				copy(pk.Buf.Bytes(), d)
				pk.Outer = offload.Outer{Src: unmap(from), Dst: s.local}
				if next++; next == len(pkts) {
					flush()
				}
			}
		}
		if next > 0 {
			flush()
		}
	}
}

// control takes the UDP datagrams that are not ESP — IKE, which goes to
// the Handler (RFC 3948 §2.2), and NAT keepalives — and reports whether
// payload was one.
func (e *Endpoints) control(s *Socket, from netip.AddrPort, payload []byte) bool {
	switch {
	case header.IsNATKeepalive(payload):
	case s.local.Port() == IKEPort:
		e.h.IKE(s.local, unmap(from), payload)
	case header.IsNonESP(payload):
		e.h.IKE(s.local, unmap(from), payload[header.NonESPMarkerSize:])
	default:
		return false
	}
	return true
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// bigPacket returns a packet whose buffer holds a 64 KiB IP packet.
func bigPacket() *offload.Packet {
	return &offload.Packet{Buf: &driver.Buffer{Mem: make([]byte, offload.Headroom+1<<16+offload.Tailroom), Off: offload.Headroom}}
}
