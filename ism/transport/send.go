package transport

import (
	"errors"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/offload"
)

// Sender batches encapsulated packets per socket and sends each batch with
// one sendmmsg, ESP in UDP segmented by the kernel (UDP_SEGMENT) where it
// can, raw ESP and AH on a ring socket written into the ring with one
// system call. The zero value is ready; it is used by one goroutine at a
// time.
type Sender struct {
	batches []sendBatch
}

type sendBatch struct {
	s     *Socket
	gso   gsoBatch
	msgs  []ipv4.Message
	pkts  []*offload.Packet
	ips   []net.IPAddr
	udps  []net.UDPAddr
	bytes [][16]byte
	iovs  [][1][]byte // msgs[i].Buffers, kept so that Add allocates nothing
	bufs  [][]byte    // a ring socket's packets
}

// Add queues an encapsulated packet on s: a whole IP packet for a raw
// socket, ESP from the ESP header for a UDP socket, which writes the IP
// and UDP headers. It goes to its SA's outer destination.
func (tx *Sender) Add(s *Socket, pk *offload.Packet) {
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
	if s.ring != nil {
		b.pkts = append(b.pkts, pk)
		b.bufs = append(b.bufs, pk.Buf.Bytes())
		return
	}
	i := len(b.msgs)
	if i == len(b.ips) {
		b.ips = append(b.ips, net.IPAddr{})
		b.udps = append(b.udps, net.UDPAddr{})
		b.bytes = append(b.bytes, [16]byte{})
		b.iovs = append(b.iovs, [1][]byte{})
	}
	dst := pk.SA.Outer().Dst
	a := dst.Addr().As16()
	ip := b.bytes[i][:]
	copy(ip, a[:])
	if dst.Addr().Is4() {
		ip = ip[12:]
	}
	// A view of a wildcard socket names its address as the source.
	b.iovs[i][0] = pk.Buf.Bytes()
	m := ipv4.Message{Buffers: b.iovs[i][:], OOB: s.src}
	if s.kind == UDP {
		u := &b.udps[i]
		u.IP, u.Port = ip, int(dst.Port())
		m.Addr = u
	} else {
		b.ips[i].IP = ip
		m.Addr = &b.ips[i]
	}
	b.msgs = append(b.msgs, m)
	b.pkts = append(b.pkts, pk)
}

// Flush sends every queued batch; refused is called for each packet a
// socket did not take.
func (tx *Sender) Flush(refused func(*offload.Packet)) {
	for i := range tx.batches {
		b := &tx.batches[i]
		if len(b.pkts) == 0 {
			continue
		}
		sent := b.send()
		for _, pk := range b.pkts[sent:] {
			refused(pk)
		}
		clear(b.iovs[:len(b.msgs)])
		clear(b.msgs)
		clear(b.pkts)
		clear(b.bufs)
		b.msgs, b.pkts, b.bufs = b.msgs[:0], b.pkts[:0], b.bufs[:0]
	}
}

// send writes the batch and returns how many packets left.
func (b *sendBatch) send() int {
	if b.s.ring != nil {
		// Through the ring, or what it cannot take through raw
		// sockets; it says how many went, not which.
		n, _ := b.s.ring.conn.Send(b.bufs)
		return n
	}
	gso := &b.s.fd().gso
	if b.s.kind != UDP || !gso.Load() || len(b.msgs) == 1 {
		n, _ := b.s.writeBatch(b.msgs)
		return n
	}
	b.gso.coalesce(b.msgs, b.s.src)
	n, err := b.s.writeBatch(b.gso.out)
	sent := 0
	for _, c := range b.gso.counts[:n] {
		sent += c
	}
	if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) {
		// The path cannot segment (no checksum offload): fall back,
		// for good if the datagrams go unsegmented (EINVAL may be a
		// source address that is not there, a VIP not yet taken over:
		// that says nothing of GSO, and the retry fails too).
		m, err := b.s.writeBatch(b.msgs[sent:])
		if m > 0 || err == nil {
			gso.Store(false)
		}
		return sent + m
	}
	return sent
}
