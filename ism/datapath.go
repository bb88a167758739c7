package ism

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
)

// newPackets returns n packets with buffers of at least
// offload.BufferSize: from an accelerator's own memory when one offers it
// (driver.BufferPool: DPDK mbufs, so that packets are read straight into
// memory the device can reach, with no copy), else from Go memory.
func (g *Gateway) newPackets(n int) []*offload.Packet {
	pkts := make([]*offload.Packet, n)
	got := 0
	if g.pool != nil {
		bufs := make([]*driver.Buffer, n)
		got = g.pool.AllocBuffers(bufs)
		for i := range got {
			pkts[i] = &offload.Packet{Buf: bufs[i]}
		}
	}
	for i := got; i < n; i++ {
		pkts[i] = offload.NewPacket()
	}
	return pkts
}

// addrs returns an IP packet's source and destination.
func addrs(pkt []byte) (src, dst netip.Addr, ok bool) {
	switch {
	case len(pkt) >= header.IPv4MinimumSize && pkt[0]>>4 == 4:
		ip := header.IPv4(pkt)
		return ip.Src(), ip.Dst(), true
	case len(pkt) >= header.IPv6MinimumSize && pkt[0]>>4 == 6:
		ip := header.IPv6(pkt)
		return ip.Src(), ip.Dst(), true
	}
	return netip.Addr{}, netip.Addr{}, false
}

// outbound is the send side of one operational VR:
//
//  1. read a batch from the secure-interface device;
//  2. find each packet's tunnel (fib), check that the tunnel is up, that the
//     packet is inside its selectors and MTU, and take the outbound SA;
//  3. encapsulate the batch (offload);
//  4. send each packet on its tunnel's transport socket, a batch per socket.
//
// One goroutine per operational VR runs it; it owns pkts and tx.
func (g *Gateway) outbound(v *vr, dev tun.Device) {
	defer g.wg.Done()
	n := dev.BatchSize()
	p := g.eng.NewProcessor()
	pkts := g.newPackets(n)
	bufs := make([][]byte, n)
	setBuf := func(i int) {
		bufs[i] = pkts[i].Buf.Mem[offload.Headroom-tunOffset : offload.Headroom+driver.MaxPacket]
	}
	for i := range pkts {
		setBuf(i)
	}
	sizes := make([]int, n)
	work := make([]*offload.Packet, 0, n)
	tuns := make([]*Tunnel, 0, n)
	lens := make([]int, 0, n) // inner lengths, for the counters
	var tx sender
	for {
		k, err := dev.Read(bufs, sizes, tunOffset)
		if err != nil {
			if g.closing.Load() || errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, tun.ErrTooManySegments) {
				g.counters.Drop(offload.DropTooBig)
			} else {
				g.log.Warn("secure-interface device read", "vr", v.name, "err", err)
				time.Sleep(10 * time.Millisecond)
			}
			if k == 0 {
				continue
			}
		}
		f := v.fib.Load()
		work, tuns, lens = work[:0], tuns[:0], lens[:0]
		for i := range k {
			pk := pkts[i]
			pk.Reset(sizes[i])
			t, r := classify(f, pk.Buf.Bytes())
			if r != offload.NotDropped {
				if t != nil {
					t.tx.Drop(r)
					if r == offload.DropNoSA && t.signaled() {
						g.acquire(t)
					}
				} else {
					g.counters.Drop(r)
				}
				continue
			}
			pk.SA = t.out.Load()
			work = append(work, pk)
			tuns = append(tuns, t)
			lens = append(lens, sizes[i])
		}
		if len(work) == 0 {
			continue
		}
		p.Encap(work)
		for i, pk := range work {
			t := tuns[i]
			if pk.Drop != offload.NotDropped {
				t.tx.Drop(pk.Drop)
				continue
			}
			t.tx.Packets.Add(1)
			t.tx.Bytes.Add(uint64(lens[i]))
			tx.add(t.txSock.Load(), pk)
		}
		tx.flush(g)
		for i := range k {
			if pkts[i].Buf == nil { // abandoned to a stuck driver
				pkts[i] = offload.NewPacket()
				setBuf(i)
			}
		}
	}
}

// classify finds the tunnel of a packet read from an operational VR's
// device and checks that the tunnel may send it.
func classify(f *fib, pkt []byte) (*Tunnel, offload.DropReason) {
	src, dst, ok := addrs(pkt)
	if !ok {
		return nil, offload.DropMalformed
	}
	t := f.lookup(src, dst)
	switch {
	case t == nil:
		return nil, offload.DropNoRoute
	case !t.routed():
		return t, offload.DropTunnelDown
	case !t.local.Contains(src) || !t.remote.Contains(dst):
		return t, offload.DropSelector
	case t.out.Load() == nil:
		return t, offload.DropNoSA
	case len(pkt) > int(t.mtu.Load()):
		return t, offload.DropTooBig
	}
	return t, offload.NotDropped
}

// sender batches encapsulated packets per transport socket. The zero value
// is ready; it is owned by one goroutine.
type sender struct {
	batches []sendBatch
}

type sendBatch struct {
	s     *sock
	gso   gsoBatch
	msgs  []ipv4.Message
	pkts  []*offload.Packet
	ips   []net.IPAddr
	udps  []net.UDPAddr
	bytes [][16]byte
}

// add queues an encapsulated packet (a whole outer IP packet) on s.
func (tx *sender) add(s *sock, pk *offload.Packet) {
	var b *sendBatch
	for i := range tx.batches {
		if tx.batches[i].s == s {
			b = &tx.batches[i]
			break
		}
	}
	if b == nil {
		tx.batches = append(tx.batches, sendBatch{s: s})
		b = &tx.batches[len(tx.batches)-1]
	}
	i := len(b.msgs)
	if i == len(b.ips) {
		b.ips = append(b.ips, net.IPAddr{})
		b.udps = append(b.udps, net.UDPAddr{})
		b.bytes = append(b.bytes, [16]byte{})
	}
	pkt := pk.Buf.Bytes()
	var dst []byte
	ipLen := header.IPv4MinimumSize
	if pkt[0]>>4 == 6 {
		ipLen = header.IPv6MinimumSize
		dst = b.bytes[i][:copy(b.bytes[i][:], pkt[24:40])]
	} else {
		dst = b.bytes[i][:copy(b.bytes[i][:], pkt[16:20])]
	}
	m := ipv4.Message{Buffers: [][]byte{pkt}}
	if s.kind == sockUDP {
		// The UDP socket writes the IP and UDP headers itself.
		u := &b.udps[i]
		u.IP, u.Port = dst, int(header.UDP(pkt[ipLen:]).DstPort())
		m.Buffers[0], m.Addr = pkt[ipLen+header.UDPMinimumSize:], u
	} else {
		b.ips[i].IP = dst
		m.Addr = &b.ips[i]
	}
	b.msgs = append(b.msgs, m)
	b.pkts = append(b.pkts, pk)
}

// flush sends every queued batch, segmented by the kernel where it can;
// what a socket refuses is counted.
func (tx *sender) flush(g *Gateway) {
	for i := range tx.batches {
		b := &tx.batches[i]
		if len(b.msgs) == 0 {
			continue
		}
		sent := b.send(g)
		for _, pk := range b.pkts[sent:] {
			g.counters.Drop(offload.DropSendError)
			if pk.SA != nil {
				pk.SA.Counters().Drop(offload.DropSendError)
			}
		}
		clear(b.msgs)
		b.msgs, b.pkts = b.msgs[:0], b.pkts[:0]
	}
}

// send writes the batch and returns how many packets left.
func (b *sendBatch) send(g *Gateway) int {
	if b.s.kind != sockUDP || !b.s.gso.Load() || len(b.msgs) == 1 {
		n, _ := b.s.writeBatch(b.msgs)
		return n
	}
	b.gso.coalesce(b.msgs)
	n, err := b.s.writeBatch(b.gso.out)
	if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) {
		// The path cannot segment (no checksum offload): fall back.
		g.log.Info("UDP segmentation offload off", "socket", b.s.local.String(), "err", err)
		b.s.gso.Store(false)
		sent := 0
		for _, c := range b.gso.counts[:n] {
			sent += c
		}
		m, _ := b.s.writeBatch(b.msgs[sent:])
		return sent + m
	}
	sent := 0
	for _, c := range b.gso.counts[:n] {
		sent += c
	}
	return sent
}

func (g *Gateway) startInbound(s *sock, ep *endpoint) {
	g.wg.Add(1)
	go g.inbound(s, ep)
}

// inbound is the receive side of one transport socket:
//
//  1. read a batch (recvmmsg); from UDP, set IKE and keepalives aside and
//     put an IP and UDP header back in front of ESP, so that the engine sees
//     what came off the wire;
//  2. decapsulate the batch (offload: SPI lookup, replay, ICV, decrypt);
//  3. check each inner packet against its tunnel's selectors and write it to
//     the tunnel's operational VR device, a batch per device.
//
// One goroutine per socket runs it.
func (g *Gateway) inbound(s *sock, ep *endpoint) {
	defer g.wg.Done()
	if s.kind == sockUDP && s.gro {
		g.inboundGRO(s)
		return
	}
	n := offload.BurstSize
	p := g.eng.NewProcessor()
	pkts := g.newPackets(n)
	msgs := make([]ipv4.Message, n)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{pkts[i].Buf.Mem[offload.Headroom : offload.Headroom+driver.MaxPacket]}
	}
	work := make([]*offload.Packet, 0, n)
	var rx deliverer
	for {
		k, err := s.readBatch(msgs)
		if err != nil {
			if g.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Warn("transport socket read", "socket", s.local.String(), "kind", s.kind.String(), "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		work = work[:0]
		for i := range k {
			pk := pkts[i]
			pk.Reset(msgs[i].N)
			if s.kind == sockUDP {
				from, ok := msgs[i].Addr.(*net.UDPAddr)
				if !ok || !g.espInUDP(s, from.AddrPort(), pk) {
					continue
				}
			}
			work = append(work, pk)
		}
		g.receive(p, work, &rx)
		for i := range k {
			if pkts[i].Buf == nil {
				pkts[i] = offload.NewPacket()
				msgs[i].Buffers[0] = pkts[i].Buf.Mem[offload.Headroom : offload.Headroom+driver.MaxPacket]
			}
		}
	}
}

// inboundGRO is inbound for a UDP socket whose datagrams arrive coalesced:
// each read takes up to groMsgs runs of datagrams, which are split into
// packets and decapsulated a burst at a time.
func (g *Gateway) inboundGRO(s *sock) {
	p := g.eng.NewProcessor()
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
	var rx deliverer
	next := 0
	flush := func() {
		g.receive(p, pkts[:next], &rx)
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
			if g.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Warn("transport socket read", "socket", s.local.String(), "kind", s.kind.String(), "err", err)
			time.Sleep(10 * time.Millisecond)
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
				if g.controlInUDP(s, from, d) {
					continue
				}
				if len(d) > driver.MaxPacket {
					g.counters.Drop(offload.DropTooBig)
					continue
				}
				pk := pkts[next]
				pk.Reset(len(d))
				copy(pk.Buf.Bytes(), d)
				if !g.espInUDP(s, from, pk) {
					continue
				}
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

// espInUDP sorts a UDP datagram (in pk at Headroom): IKE goes to the IKE
// daemon and keepalives away, and ESP gets the IP and UDP headers the socket
// took off, so that the engine sees what came off the wire. It reports
// whether pk now holds ESP.
func (g *Gateway) espInUDP(s *sock, from netip.AddrPort, pk *offload.Packet) bool {
	if g.controlInUDP(s, from, pk.Buf.Bytes()) {
		return false
	}
	prependUDP(pk.Buf, from, s.local)
	return true
}

// controlInUDP takes the datagrams that are not ESP — IKE, which goes to
// the IKE daemon (RFC 3948 §2.2), and NAT keepalives — and reports whether
// payload was one.
func (g *Gateway) controlInUDP(s *sock, from netip.AddrPort, payload []byte) bool {
	switch {
	case header.IsNATKeepalive(payload):
	case s.local.Port() == IKEPort:
		g.ikeInput(s.local, from, payload)
	case header.IsNonESP(payload):
		g.ikeInput(s.local, from, payload[header.NonESPMarkerSize:])
	default:
		return false
	}
	return true
}

// receive decapsulates a burst, checks each inner packet against its
// tunnel's selectors and writes it to the tunnel's operational VR device.
func (g *Gateway) receive(p *offload.Processor, work []*offload.Packet, rx *deliverer) {
	if len(work) == 0 {
		return
	}
	p.Decap(work)
	for _, pk := range work {
		if pk.Drop != offload.NotDropped {
			if pk.SA != nil {
				if t := g.tunnelByID(pk.SA.Cookie()); t != nil {
					t.rx.Drop(pk.Drop)
				}
			}
			continue
		}
		t := g.tunnelByID(pk.SA.Cookie())
		if t == nil {
			g.counters.Drop(offload.DropNoSA)
			continue
		}
		src, dst, _ := addrs(pk.Buf.Bytes())
		if !t.remote.Contains(src) || !t.local.Contains(dst) {
			t.rx.Drop(offload.DropSelector)
			continue
		}
		t.rx.Packets.Add(1)
		t.rx.Bytes.Add(uint64(pk.Buf.Len))
		rx.add(t, pk)
	}
	rx.flush(g)
}

// prependUDP writes, in the headroom, the IP and UDP headers a UDP socket
// stripped from an ESP-in-UDP datagram.
func prependUDP(b *driver.Buffer, from, to netip.AddrPort) {
	n := b.Len + header.UDPMinimumSize
	ipLen := header.IPv4MinimumSize
	if from.Addr().Is6() && !from.Addr().Is4In6() {
		ipLen = header.IPv6MinimumSize
	}
	b.Off -= ipLen + header.UDPMinimumSize
	b.Len = ipLen + n
	pkt := b.Bytes()
	if ipLen == header.IPv4MinimumSize {
		header.IPv4(pkt).Encode(&header.IPv4Fields{TotalLength: uint16(b.Len), TTL: header.DefaultTTL,
			Protocol: header.ProtoUDP, Src: from.Addr().Unmap(), Dst: to.Addr().Unmap()})
	} else {
		header.IPv6(pkt).Encode(&header.IPv6Fields{PayloadLength: uint16(n), NextHeader: header.ProtoUDP,
			HopLimit: header.DefaultTTL, Src: from.Addr(), Dst: to.Addr()})
	}
	header.UDP(pkt[ipLen:]).Encode(&header.UDPFields{SrcPort: from.Port(), DstPort: to.Port(), Length: uint16(n)})
}

// deliverer batches decapsulated packets per operational VR device. The
// zero value is ready; it is owned by one goroutine.
type deliverer struct {
	batches []deliverBatch
}

type deliverBatch struct {
	v    *vr
	bufs [][]byte
	ts   []*Tunnel
}

func (rx *deliverer) add(t *Tunnel, pk *offload.Packet) {
	var b *deliverBatch
	for i := range rx.batches {
		if rx.batches[i].v == t.op {
			b = &rx.batches[i]
			break
		}
	}
	if b == nil {
		rx.batches = append(rx.batches, deliverBatch{v: t.op})
		b = &rx.batches[len(rx.batches)-1]
	}
	buf := pk.Buf
	b.bufs = append(b.bufs, buf.Mem[buf.Off-tunOffset:buf.Off+buf.Len])
	b.ts = append(b.ts, t)
}

// flush writes each batch to its device; what the device refuses is
// counted.
func (rx *deliverer) flush(g *Gateway) {
	for i := range rx.batches {
		b := &rx.batches[i]
		if len(b.bufs) == 0 || b.v.dev == nil {
			continue
		}
		if _, err := b.v.dev.Write(b.bufs, tunOffset); err != nil {
			g.counters.Drop(offload.DropDeliverError)
		}
		clear(b.bufs)
		b.bufs, b.ts = b.bufs[:0], b.ts[:0]
	}
}

// ikeInput hands an IKE datagram to the IKE daemon, which copies it.
func (g *Gateway) ikeInput(local, remote netip.AddrPort, msg []byte) {
	if d := g.ike.Load(); d != nil {
		d.Receive(local, netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port()), msg)
	}
}

// bigPacket returns a packet whose buffer holds a 64 KiB IP packet.
func bigPacket() *offload.Packet {
	return &offload.Packet{Buf: &driver.Buffer{Mem: make([]byte, offload.Headroom+1<<16+offload.Tailroom), Off: offload.Headroom}}
}
