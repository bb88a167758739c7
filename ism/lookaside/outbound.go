package lookaside

import (
	"errors"
	"net/netip"
	"os"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
)

// newPackets fills pkts with packets whose buffers hold at least
// offload.BufferSize: from an accelerator's own memory when one offers it
// (driver.BufferPool: DPDK mbufs, so that packets are read straight into
// memory the device can reach, with no copy), else from Go memory.
func (d *Datapath) newPackets(pkts []*offload.Packet) {
	got := 0
	if d.pool != nil {
		bufs := make([]*driver.Buffer, len(pkts))
		got = d.pool.AllocBuffers(bufs)
		for i := range got {
			pkts[i] = &offload.Packet{Buf: bufs[i]}
		}
	}
	for i := got; i < len(pkts); i++ {
		pkts[i] = offload.NewPacket()
	}
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
//  2. find each packet's tunnel (fib), check that the tunnel is routed, that
//     the packet is inside its selectors and MTU, and take the outbound SA;
//  3. encapsulate the batch (offload);
//  4. send each packet on its tunnel's transport socket, a batch per socket.
//
// One goroutine per device runs it, until the device closes.
func (d *Datapath) outbound(dev *device) {
	defer d.wg.Done()
	n := dev.dev.BatchSize()
	p := d.eng.NewProcessor()
	pkts := make([]*offload.Packet, n)
	d.newPackets(pkts)
	bufs := make([][]byte, n)
	setBuf := func(i int) {
		bufs[i] = pkts[i].Buf.Mem[offload.Headroom-tunOffset : offload.Headroom+driver.MaxPacket]
	}
	for i := range pkts {
		setBuf(i)
	}
	sizes := make([]int, n)
	work := make([]*offload.Packet, 0, n)
	paths := make([]*path, 0, n)
	socks := make([]*transport.Socket, 0, n)
	lens := make([]int, 0, n) // inner lengths, for the counters
	var tx transport.Sender
	refused := func(pk *offload.Packet) {
		d.drops.Drop(offload.DropSendError)
		if pk.SA != nil {
			pk.SA.Counters().Drop(offload.DropSendError)
		}
	}
	for {
		k, err := dev.dev.Read(bufs, sizes, tunOffset)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, tun.ErrTooManySegments) {
				d.drops.Drop(offload.DropTooBig)
			} else {
				d.log.Warn("secure-interface device read", "vr", dev.v.Name, "err", err)
				time.Sleep(10 * time.Millisecond)
			}
			if k == 0 {
				continue
			}
		}
		f := dev.fib.Load()
		work, paths, socks, lens = work[:0], paths[:0], socks[:0], lens[:0]
		for i := range k {
			pk := pkts[i]
			pk.Reset(sizes[i])
			pt, sa, r := classify(f, pk.Buf.Bytes())
			switch {
			case r == offload.DropNoSA && pt.t.Signaled:
				// Held until IKE installs an SA that covers it (hold.go),
				// negotiated for its own addresses.
				src, dst, _ := addrs(pk.Buf.Bytes())
				d.holdOrDrop(pt, pk.Buf.Bytes(), src, dst)
				d.events.Acquire(pt.t, src, dst)
				if pt.outs.Load().pick(src, dst) != nil { // the SA came meanwhile
					pt.release()
				}
				continue
			case r == offload.NotDropped && sa.held.Load():
				// Behind the packets held for its SA, in order.
				src, dst, _ := addrs(pk.Buf.Bytes())
				d.holdOrDrop(pt, pk.Buf.Bytes(), src, dst)
				pt.release()
				continue
			case r != offload.NotDropped && pt != nil:
				pt.t.TX.Drop(r)
				continue
			case r != offload.NotDropped:
				d.drops.Drop(r)
				continue
			}
			pk.SA = sa.sa
			work = append(work, pk)
			paths = append(paths, pt)
			socks = append(socks, sa.sock)
			lens = append(lens, sizes[i])
		}
		if len(work) == 0 {
			continue
		}
		p.Encap(work)
		for i, pk := range work {
			pt := paths[i]
			if pk.Drop != offload.NotDropped {
				pt.t.TX.Drop(pk.Drop)
				continue
			}
			s := socks[i]
			if s == nil {
				refused(pk)
				continue
			}
			pt.t.TX.Packets.Add(1)
			pt.t.TX.Bytes.Add(uint64(lens[i]))
			tx.Add(s, pk)
		}
		tx.Flush(refused)
		for i := range k {
			if pkts[i].Buf == nil { // abandoned to a stuck driver
				pkts[i] = offload.NewPacket()
				setBuf(i)
			}
		}
	}
}

// classify finds the path of a packet read from an operational VR's device,
// checks that the tunnel may send it, and picks its outbound SA.
func classify(f *fib, pkt []byte) (*path, *saEntry, offload.DropReason) {
	src, dst, ok := addrs(pkt)
	if !ok {
		return nil, nil, offload.DropMalformed
	}
	p := f.lookup(src, dst)
	switch {
	case p == nil:
		return nil, nil, offload.DropNoRoute
	case !p.t.Routed.Load():
		return p, nil, offload.DropTunnelDown
	case !p.t.Local.Contains(src) || !p.t.Remote.Contains(dst):
		return p, nil, offload.DropSelector
	}
	sa := p.outs.Load().pick(src, dst)
	switch {
	case sa == nil:
		return p, nil, offload.DropNoSA
	case len(pkt) > int(p.t.MTU.Load()):
		return p, nil, offload.DropTooBig
	}
	return p, sa, offload.NotDropped
}
