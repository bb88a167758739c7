package ring

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// BenchmarkSend sends 1420-byte ESP packets from a to b in batches of 128,
// in one run: through raw sockets with IP_HDRINCL and sendmmsg (ISM's path
// today), through the AF_XDP ring (Conn), and through an AF_PACKET
// TPACKET_V3 send ring with PACKET_QDISC_BYPASS (the other ring the kernel
// offers; kept here only to be measured against). b's kernel takes every
// packet in and drops it at an unread raw socket, the same work whichever
// way it was sent. cpu-ns/pkt is this process's CPU time (user and system,
// softirq work done on its behalf included) per packet.
func BenchmarkSend(b *testing.B) {
	l := newPairLab(b)
	openRaw(b, l.b, false, protoESP) // unread: b's kernel drops at it
	pkts := make([][]byte, 128)
	for i := range pkts {
		pkts[i] = espPacket(a4, b4, 1420, uint32(i+1))
	}
	run := func(b *testing.B, send func([][]byte) (int, error)) {
		b.SetBytes(1420)
		cpu0, t0 := cpuTime(), time.Now()
		sent := 0
		for sent < b.N {
			n, err := send(pkts[:min(len(pkts), b.N-sent)])
			if err != nil {
				b.Fatal(err)
			}
			sent += n
		}
		el := time.Since(t0)
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(sent), "cpu-ns/pkt")
		b.ReportMetric(float64(sent)/el.Seconds()/1e6, "Mpps")
	}
	b.Run("socket", func(b *testing.B) { run(b, openSockets(b, l.a).Send) })
	b.Run("af_xdp", func(b *testing.B) {
		c := openConn(b, l.a)
		run(b, c.Send)
		if st := c.Stats(); st.FallbackSent != 0 {
			b.Fatalf("%d packets took the socket path", st.FallbackSent)
		}
	})
	b.Run("af_packet", func(b *testing.B) { run(b, openPacketTX(b, l).send) })
}

// BenchmarkReceive receives 1420-byte ESP packets that b sends as fast as
// it can (raw sockets, sendmmsg), in one run: with a raw socket and
// recvmmsg (ISM's path today) and through the AF_XDP ring. Mpps is what
// arrived; cpu-ns/pkt is this process's CPU time, sender's included, per
// packet received.
func BenchmarkReceive(b *testing.B) {
	l := newPairLab(b)
	pkts := make([][]byte, 128)
	for i := range pkts {
		pkts[i] = espPacket(b4, a4, 1420, uint32(i+1))
	}
	tx := openSockets(b, l.b)
	run := func(b *testing.B, recv ReceiveFunc) {
		b.SetBytes(1420)
		var stop atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			for !stop.Load() {
				tx.Send(pkts)
			}
		}()
		bufs := make([][]byte, 128)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		sizes := make([]int, len(bufs))
		cpu0, t0 := cpuTime(), time.Now()
		got := 0
		for got < b.N {
			n, err := recv(bufs, sizes)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		el := time.Since(t0)
		cpu := cpuTime() - cpu0
		stop.Store(true)
		<-done
		b.ReportMetric(float64(cpu)/float64(got), "cpu-ns/pkt")
		b.ReportMetric(float64(got)/el.Seconds()/1e6, "Mpps")
	}
	b.Run("socket", func(b *testing.B) { run(b, socketReceiver(b, l.a)) })
	b.Run("af_xdp", func(b *testing.B) { run(b, openConn(b, l.a).ReceiveFuncs()[0]) })
}

// cpuTime is the process's user and system time.
func cpuTime() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// socketReceiver returns a receive function over a raw ESP socket in ns
// read with recvmmsg, as ISM reads today.
func socketReceiver(b *testing.B, ns string) ReceiveFunc {
	var c net.PacketConn
	in(b, ns, func() (err error) { c, err = net.ListenIP("ip4:50", nil); return err })
	b.Cleanup(func() { c.Close() })
	if rc, err := c.(*net.IPConn).SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) })
	}
	pc := ipv4.NewPacketConn(c)
	ms := make([]ipv4.Message, 128)
	return func(bufs [][]byte, sizes []int) (int, error) {
		for i := range ms[:len(bufs)] {
			ms[i].Buffers = bufs[i : i+1]
		}
		n, err := pc.ReadBatch(ms[:len(bufs)], 0)
		for i := range n {
			sizes[i] = ms[i].N
		}
		return n, err
	}
}

// packetTX is an AF_PACKET socket with a TPACKET_V3 send ring and
// PACKET_QDISC_BYPASS, for BenchmarkSend only.
type packetTX struct {
	fd       int
	ring     []byte
	frame    int
	frames   int
	next     int
	src, dst [6]byte
}

// tpacketData is where a frame's data starts in a TPACKET_V3 send ring:
// TPACKET_ALIGN(sizeof(struct tpacket3_hdr)).
const tpacketData = 48

func openPacketTX(b *testing.B, l *pairLab) *packetTX {
	p := &packetTX{frame: 2048, frames: 2048}
	var dst net.HardwareAddr
	in(b, l.b, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil {
			dst = ifi.HardwareAddr
		}
		return err
	})
	copy(p.dst[:], dst)
	in(b, l.a, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		copy(p.src[:], ifi.HardwareAddr)
		if p.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(p.fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
			return err
		}
		req := unix.TpacketReq3{Block_size: 1 << 16, Block_nr: uint32(p.frames * p.frame >> 16), Frame_size: uint32(p.frame), Frame_nr: uint32(p.frames)}
		if err := unix.SetsockoptTpacketReq3(p.fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(p.fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return err
		}
		if p.ring, err = unix.Mmap(p.fd, 0, p.frames*p.frame, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			return err
		}
		return unix.Bind(p.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
	})
	b.Cleanup(func() { unix.Munmap(p.ring); unix.Close(p.fd) })
	return p
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (p *packetTX) hdr(i int) *unix.Tpacket3Hdr {
	return (*unix.Tpacket3Hdr)(unsafe.Pointer(&p.ring[i*p.frame]))
}

// send writes each packet into the next free frame and flushes the ring
// with one sendto, which returns when the kernel has sent them.
func (p *packetTX) send(pkts [][]byte) (int, error) {
	for _, pkt := range pkts {
		h := p.hdr(p.next)
		for atomic.LoadUint32(&h.Status) != unix.TP_STATUS_AVAILABLE {
			if _, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(p.fd), 0, 0, 0, 0, 0); e != 0 && e != unix.EAGAIN {
				return 0, e
			}
		}
		f := p.ring[p.next*p.frame+tpacketData:]
		copy(f[0:6], p.dst[:])
		copy(f[6:12], p.src[:])
		binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
		copy(f[ethLen:], pkt)
		h.Len = uint32(ethLen + len(pkt))
		atomic.StoreUint32(&h.Status, unix.TP_STATUS_SEND_REQUEST)
		p.next = (p.next + 1) % p.frames
	}
	if _, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(p.fd), 0, 0, 0, 0, 0); e != 0 {
		return 0, e
	}
	return len(pkts), nil
}

// ringPair opens a Conn in each namespace of a pair lab and returns them
// with a batch of 128 1420-byte ESP packets from a to b, the receiver's
// ReceiveFunc and 128 buffers (and sizes) to read into.
func ringPair(b *testing.B) (tx, rx *Conn, pkts [][]byte, recv ReceiveFunc, bufs [][]byte, sizes []int) {
	l := newPairLab(b)
	tx, rx = openConn(b, l.a), openConn(b, l.b)
	pkts = make([][]byte, 128)
	for i := range pkts {
		pkts[i] = espPacket(a4, b4, 1420, uint32(i+1))
	}
	recv = rx.ReceiveFuncs()[0]
	bufs = make([][]byte, 128)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	return tx, rx, pkts, recv, bufs, make([]int, len(bufs))
}

// BenchmarkRingToRing sends 1420-byte ESP packets from a Conn in a to a
// Conn in b, batches of 128, as two gateways on raw ESP do: b's XDP
// program steers them to its ring, a goroutine reads them. cpu-ns/pkt is
// the process's CPU time (both sides, the kernel's work in their system
// calls included) per packet received; drops are what b's ring had no
// room for.
func BenchmarkRingToRing(b *testing.B) {
	tx, rx, pkts, recv, bufs, sizes := ringPair(b)
	var stop atomic.Bool
	var sent, got atomic.Int64
	done := make(chan struct{})
	b.SetBytes(1420)
	cpu0, t0 := cpuTime(), time.Now()
	go func() {
		// At most half of b's ring in flight, as TCP's window keeps a
		// tunnel's: what is measured is what arrives, not what b drops.
		defer close(done)
		for !stop.Load() {
			for sent.Load()-got.Load() > ringSize/2 && !stop.Load() {
				time.Sleep(50 * time.Microsecond)
			}
			n, err := tx.Send(pkts)
			if err != nil {
				b.Error(err)
				return
			}
			sent.Add(int64(n))
		}
	}()
	for got.Load() < int64(b.N) {
		n, err := recv(bufs, sizes)
		if err != nil {
			b.Fatal(err)
		}
		got.Add(int64(n))
	}
	el, cpu := time.Since(t0), cpuTime()-cpu0
	stop.Store(true)
	<-done
	st := rx.Stats()
	n := float64(got.Load())
	b.ReportMetric(float64(cpu)/n, "cpu-ns/pkt")
	b.ReportMetric(n/el.Seconds()/1e6, "Mpps")
	b.ReportMetric(float64(st.RxRingFull+st.RxDropped+st.RxFillEmpty)/n, "drops/pkt")
}

// BenchmarkRingToRingLockstep is BenchmarkRingToRing in one goroutine:
// a batch sent, then read until it has all arrived, so that the reader
// never waits: the transport's own cost per packet, without wakeups.
func BenchmarkRingToRingLockstep(b *testing.B) {
	tx, _, pkts, recv, bufs, sizes := ringPair(b)
	b.SetBytes(1420)
	cpu0, t0 := cpuTime(), time.Now()
	got := 0
	for got < b.N {
		n, err := tx.Send(pkts)
		if err != nil {
			b.Fatal(err)
		}
		for n > 0 {
			k, err := recv(bufs, sizes)
			if err != nil {
				b.Fatal(err)
			}
			n -= k
			got += k
		}
	}
	el, cpu := time.Since(t0), cpuTime()-cpu0
	b.ReportMetric(float64(cpu)/float64(got), "cpu-ns/pkt")
	b.ReportMetric(float64(got)/el.Seconds()/1e6, "Mpps")
}

// BenchmarkUDPGSOToGRO is BenchmarkRingToRingLockstep's anchor: the same
// 128 packets of 1420 bytes a batch, as ESP in UDP leaves and arrives in a
// gateway: sendmmsg with UDP_SEGMENT (45 datagrams a message), read with
// recvmmsg from a socket with UDP_GRO, so that the kernel handles a
// message of datagrams at a time where raw ESP takes one packet at a time.
func BenchmarkUDPGSOToGRO(b *testing.B) {
	l := newPairLab(b)
	const seg, batch, perMsg = 1420 - 28, 128, 45
	var tx, rx *net.UDPConn
	in(b, l.b, func() (err error) {
		rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: b4.AsSlice(), Port: 4500})
		return err
	})
	in(b, l.a, func() (err error) {
		tx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: a4.AsSlice(), Port: 4500})
		return err
	})
	b.Cleanup(func() { tx.Close(); rx.Close() })
	if rc, err := rx.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		})
	}
	payload := make([]byte, seg*perMsg)
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], seg)
	dst := &net.UDPAddr{IP: b4.AsSlice(), Port: 4500}
	var out []ipv4.Message
	for left := batch; left > 0; left -= perMsg {
		n := min(left, perMsg)
		out = append(out, ipv4.Message{Buffers: [][]byte{payload[:n*seg]}, OOB: oob, Addr: dst})
	}
	in := make([]ipv4.Message, 8)
	for i := range in {
		in[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 1<<16)}, OOB: make([]byte, 64)}
	}
	ptx, prx := ipv4.NewPacketConn(tx), ipv4.NewPacketConn(rx)
	b.SetBytes(1420)
	cpu0, t0 := cpuTime(), time.Now()
	got := 0
	for got < b.N {
		for sent := 0; sent < len(out); {
			n, err := ptx.WriteBatch(out[sent:], 0)
			if err != nil {
				b.Fatal(err)
			}
			sent += n
		}
		for want := got + batch; got < want; {
			n, err := prx.ReadBatch(in, 0)
			if err != nil {
				b.Fatal(err)
			}
			for _, m := range in[:n] {
				got += (m.N + seg - 1) / seg // the datagrams GRO joined
			}
		}
	}
	el, cpu := time.Since(t0), cpuTime()-cpu0
	b.ReportMetric(float64(cpu)/float64(got), "cpu-ns/pkt")
	b.ReportMetric(float64(got)/el.Seconds()/1e6, "Mpps")
}
