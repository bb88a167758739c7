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

// Reader reads bursts of ESP and AH from one socket or one ring queue of
// an endpoint. It is used by one goroutine at a time (the goroutines of a
// datapath's pipeline take turns).
type Reader interface {
	// Read reads at least one packet into pkts' buffers and returns how
	// many it filled; they are moved to the front of pkts (the order of
	// the others changes too): whole IP packets from raw sockets
	// and rings, ESP from the ESP header with Packet.Outer set from UDP
	// sockets. IKE messages and NAT keepalives read on the way go to the
	// Handler or are dropped. It blocks until there is a packet, and
	// returns net.ErrClosed once the socket is closed. Every packet's
	// buffer must hold BufferSize bytes.
	Read(pkts []*offload.Packet) (int, error)
	// BufferSize is the least a packet buffer must hold: more than
	// offload.BufferSize when datagrams arrive coalesced.
	BufferSize() int
	// ESP says whether ESP or AH may arrive (not on the IKE port).
	ESP() bool
	// String names the socket for logs.
	String() string
}

// BigBufferSize is the size of a buffer that holds a 64 KiB IP packet with
// the engine's headroom and tailroom: a coalesced datagram's segment, and
// what a TUN device needs to coalesce a TCP flow's segments into the first
// one's buffer on the way in (GRO).
const BigBufferSize = offload.Headroom + 1<<16 + offload.Tailroom

// loop is the receive side of one socket: the Handler serves its Reader
// until the socket closes. One goroutine per socket runs it.
func (e *Endpoints) loop(s *Socket) {
	defer e.wg.Done()
	if s.kind == UDP && s.gro {
		e.h.Serve(&groReader{sockReader: e.newSockReader(s, groMsgs)})
		return
	}
	e.h.Serve(e.newSockReader(s, offload.BurstSize))
}

// sockReader reads a socket with recvmmsg, straight into the packets'
// buffers.
type sockReader struct {
	e    *Endpoints
	s    *Socket
	msgs []ipv4.Message
	bufs [][1][]byte
}

func (e *Endpoints) newSockReader(s *Socket, n int) *sockReader {
	r := &sockReader{e: e, s: s, msgs: make([]ipv4.Message, n), bufs: make([][1][]byte, n)}
	if s.wild != nil {
		for i := range r.msgs {
			r.msgs[i].OOB = make([]byte, oobSize)
		}
	}
	return r
}

func (r *sockReader) BufferSize() int { return offload.BufferSize }
func (r *sockReader) ESP() bool       { return r.s.kind != UDP || r.s.local.Port() != IKEPort }
func (r *sockReader) String() string  { return r.s.kind.String() + " socket " + r.s.local.String() }

func (r *sockReader) Read(pkts []*offload.Packet) (int, error) {
	n := min(len(pkts), len(r.msgs))
	for {
		// Each read points the messages at the packets' buffers again:
		// a batch of control messages only has still moved the packets
		// around (a packet read into buffer i is pkts[i] before the
		// swaps below).
		for i := range n {
			r.bufs[i][0] = readBuf(pkts[i])
			r.msgs[i].Buffers = r.bufs[i][:]
		}
		k, err := r.read(r.msgs[:n])
		if err != nil {
			return 0, err
		}
		got := 0
		for i := range k {
			// A control message went before: this packet takes its
			// place.
			pkts[got], pkts[i] = pkts[i], pkts[got]
			pk := pkts[got]
			pk.Reset(r.msgs[i].N)
			switch from := r.msgs[i].Addr.(type) {
			case *net.UDPAddr:
				src, local := from.AddrPort(), r.s.localOf(r.msgs[i].OOB[:r.msgs[i].NN])
				if r.e.control(r.s, local, src, pk.Buf.Bytes()) {
					continue
				}
				pk.Outer = offload.Outer{Src: unmap(src), Dst: local}
			case *net.IPAddr:
				if a, ok := netip.AddrFromSlice(from.IP); ok && r.s.local.Addr().Is6() && r.s.kind == ESP {
					// IPv6 raw sockets deliver no IP header.
					pk.Outer = offload.Outer{Src: netip.AddrPortFrom(a, 0), Dst: r.s.local}
				}
			default:
				continue
			}
			got++
		}
		if got > 0 {
			return got, nil
		}
	}
}

// read reads a batch, waiting a moment after an error other than the
// socket's closing (which it returns).
func (r *sockReader) read(ms []ipv4.Message) (int, error) {
	for {
		k, err := r.s.readBatch(ms)
		if err == nil {
			return k, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return 0, net.ErrClosed
		}
		if r.s.errq && r.s.drainErrors() > 0 {
			continue // an ICMPv6 error about what the socket sent
		}
		r.e.log.Warn("transport socket read", "socket", r.s.local.String(), "kind", r.s.kind.String(), "err", err)
		time.Sleep(10 * time.Millisecond)
	}
}

// readBuf is where a datagram is read into: the packet's buffer past the
// headroom the engine frames in.
func readBuf(pk *offload.Packet) []byte {
	return pk.Buf.Mem[offload.Headroom : offload.Headroom+driver.MaxPacket]
}

// groReader reads a UDP socket whose datagrams arrive coalesced: each read
// takes up to groMsgs runs of datagrams, which are split into packets a
// burst at a time; what does not fit in one burst waits for the next Read.
// Segments are copied out of the coalesced datagrams into the packets'
// buffers (a datapath may give bigger ones, for the secure-interface
// device to coalesce a TCP flow's segments into the first one's buffer).
type groReader struct {
	*sockReader
	data [][]byte // the coalesced datagrams read
	// active is how many of msgs a read takes: one at first, doubling
	// each time a read fills them all, so that an endpoint that carries
	// little holds one 64 KiB buffer, not groMsgs.
	active int
	// at is the next segment to hand out: datagram i, offset off.
	i, k, off int
}

func (r *groReader) BufferSize() int { return offload.BufferSize }

func (r *groReader) Read(pkts []*offload.Packet) (int, error) {
	if r.data == nil {
		r.data = make([][]byte, len(r.msgs))
		r.grow(1)
		r.i, r.k = 0, 0
	}
	got := 0
	for got == 0 {
		if r.i == r.k {
			for i := range r.active {
				r.bufs[i][0] = r.data[i]
				r.msgs[i].Buffers = r.bufs[i][:]
			}
			k, err := r.read(r.msgs[:r.active])
			if err != nil {
				return 0, err
			}
			r.i, r.k, r.off = 0, k, 0
			if k == r.active {
				r.grow(min(2*r.active, len(r.msgs)))
			}
		}
		got = r.split(pkts)
	}
	return got, nil
}

// grow makes the first n messages' buffers.
func (r *groReader) grow(n int) {
	for i := r.active; i < n; i++ {
		r.data[i] = make([]byte, groBufSize)
		r.msgs[i].OOB = make([]byte, oobSize)
	}
	r.active = max(r.active, n)
}

// split hands out the segments read, as many as pkts holds.
func (r *groReader) split(pkts []*offload.Packet) int {
	got := 0
	for ; r.i < r.k; r.i, r.off = r.i+1, 0 {
		m := &r.msgs[r.i]
		ua, ok := m.Addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		// A coalesced datagram's segments share its addresses: GRO
		// merges only datagrams of one flow, its addresses and ports
		// alike (inet_gro_receive, udp_gro_receive_segment).
		from, local := ua.AddrPort(), r.s.localOf(m.OOB[:m.NN])
		data := m.Buffers[0][:m.N]
		seg, _ := parseOOB(m.OOB[:m.NN])
		if seg <= 0 {
			seg = len(data)
		}
		for ; r.off < len(data); r.off += seg {
			if got == len(pkts) {
				return got
			}
			d := data[r.off:min(r.off+seg, len(data))]
			if r.e.control(r.s, local, from, d) {
				continue
			}
			if len(d) > driver.MaxPacket {
				r.e.h.Drop(offload.DropTooBig)
				continue
			}
			pk := pkts[got]
			pk.Reset(len(d))
			copy(pk.Buf.Bytes(), d)
			pk.Outer = offload.Outer{Src: unmap(from), Dst: local}
			got++
		}
	}
	return got
}

// control takes the UDP datagrams that are not ESP — IKE, which goes to
// the Handler (RFC 3948 §2.2), and NAT keepalives — and reports whether
// payload was one. local is where it arrived on s; on a wildcard socket, IKE
// for an address no endpoint of the VR listens on is dropped, as is a
// datagram whose address the kernel did not give.
func (e *Endpoints) control(s *Socket, local, from netip.AddrPort, payload []byte) bool {
	if !local.IsValid() {
		e.h.Drop(offload.DropNoSA)
		return true
	}
	ike := payload
	switch {
	case header.IsNATKeepalive(payload):
		return true
	case s.local.Port() == IKEPort:
	case header.IsNonESP(payload):
		ike = payload[header.NonESPMarkerSize:]
	default:
		return false
	}
	if s.wild != nil && !e.listening(s, local.Addr()) {
		e.h.Drop(offload.DropNoSA)
		return true
	}
	e.h.IKE(local, unmap(from), ike)
	return true
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
