package lookaside

import (
	"errors"
	"net/netip"
	"os"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
)

// newPackets fills pkts with packets whose buffers hold at least size
// bytes: from an accelerator's own memory when one offers it
// (driver.BufferPool: DPDK mbufs, so that packets are read straight into
// memory the device can reach, with no copy) and size is no more than
// offload.BufferSize, else from Go memory. With owned, the Go memory is
// counted there and in BufferBytes (own) before it is allocated, so that
// the count never lags the heap.
func (d *Datapath) newPackets(pkts []*offload.Packet, size int, owned *int64) {
	got := 0
	if d.pool != nil && size <= offload.BufferSize {
		bufs := make([]*driver.Buffer, len(pkts))
		got = d.pool.AllocBuffers(bufs)
		for i := range got {
			pkts[i] = &offload.Packet{Buf: bufs[i]}
		}
	}
	n := max(size, offload.BufferSize)
	if owned != nil {
		b := int64(len(pkts)-got) * int64(n)
		*owned += b
		d.bufBytes.Add(b)
	}
	for i := got; i < len(pkts); i++ {
		pkts[i] = &offload.Packet{Buf: &driver.Buffer{Mem: make([]byte, n), Off: offload.Headroom}}
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

// outBurst is an outbound burst's own state: the packets the device is
// read into, and the path and inner length of each packet of the burst.
type outBurst struct {
	slots []*offload.Packet
	bufs  [][]byte
	sizes []int
	paths []*path             // of Burst.Pkts[i]
	socks []*transport.Socket // of Burst.Pkts[i]'s SA
	lens  []int               // inner lengths, for the counters
}

func (d *Datapath) newOutBurst(dev *device, owned *int64) *outBurst {
	n := min(dev.dev.BatchSize(), offload.BurstSize)
	ob := &outBurst{slots: make([]*offload.Packet, n), bufs: make([][]byte, n), sizes: make([]int, n),
		paths: make([]*path, 0, n), socks: make([]*transport.Socket, 0, n), lens: make([]int, 0, n)}
	d.newPackets(ob.slots, offload.BufferSize, owned)
	for i := range ob.slots {
		ob.setBuf(i)
	}
	return ob
}

func (ob *outBurst) setBuf(i int) {
	ob.bufs[i] = ob.slots[i].Buf.Mem[offload.Headroom-tunOffset : offload.Headroom+driver.MaxPacket]
}

// startOutbound starts the send side of an operational VR's device, a
// pipeline whose lanes take turns to
//
//  1. read a batch from the secure-interface device and find each
//     packet's tunnel (fib), check that the tunnel is routed, that the
//     packet is inside its selectors and MTU, and take the outbound SA
//     (readOutbound, the pipeline's intake);
//  2. encapsulate the batch (offload), the lanes at once;
//  3. send each packet on its tunnel's transport socket, a batch per
//     socket (sendOutbound), in the order read.
//
// It returns once the device is closed.
func (d *Datapath) outbound(dev *device) {
	defer d.wg.Done()
	var tx transport.Sender // Deliver's, which runs one burst at a time
	var owned int64         // NewBurst's, one at a time
	pl := d.eng.NewPipeline(ipsec.Outbound, offload.PipelineConfig{Workers: d.Workers(),
		NewBurst: func(b *offload.Burst) { b.Owner = d.newOutBurst(dev, &owned) },
		Fill:     func(b *offload.Burst) bool { return d.readOutbound(dev, b) },
		Deliver:  func(b *offload.Burst) { d.sendOutbound(b, &tx) },
	})
	d.run(pl, "device")
	d.bufBytes.Add(-owned)
}

// readOutbound reads the device until a batch has a packet to send, and
// puts those in b. It returns false once the device is closed.
func (d *Datapath) readOutbound(dev *device, b *offload.Burst) bool {
	ob := b.Owner.(*outBurst)
	for i := range ob.slots {
		if ob.slots[i].Buf == nil { // abandoned to a stuck driver
			d.newPackets(ob.slots[i:i+1], offload.BufferSize, nil)
			ob.setBuf(i)
		}
	}
	ob.paths, ob.socks, ob.lens = ob.paths[:0], ob.socks[:0], ob.lens[:0]
	for len(b.Pkts) == 0 {
		k, err := dev.dev.Read(ob.bufs, ob.sizes, tunOffset)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return false
			}
			if errors.Is(err, tun.ErrTooManySegments) {
				d.drops.Drop(offload.DropTooBig)
			} else {
				d.log.Warn("secure-interface device read", "vr", dev.v.Name, "err", err)
				time.Sleep(10 * time.Millisecond)
			}
		}
		f := dev.fib.Load()
		for i := range k {
			pk := ob.slots[i]
			pk.Reset(ob.sizes[i])
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
			b.Pkts = append(b.Pkts, pk)
			ob.paths = append(ob.paths, pt)
			ob.socks = append(ob.socks, sa.sock)
			ob.lens = append(ob.lens, ob.sizes[i])
		}
	}
	return true
}

// sendOutbound sends an encapsulated burst, a batch per socket, and counts
// it.
func (d *Datapath) sendOutbound(b *offload.Burst, tx *transport.Sender) {
	ob := b.Owner.(*outBurst)
	fence := burstFence{}
	for i, pk := range b.Pkts {
		pt := ob.paths[i]
		if pk.Drop != offload.NotDropped {
			pt.t.TX.Drop(pk.Drop)
			continue
		}
		if fence.fenced(pt) {
			pt.t.TX.Drop(offload.DropTunnelDown)
			continue
		}
		s := ob.socks[i]
		if s == nil {
			d.refused(pk)
			continue
		}
		pt.t.TX.Packets.Add(1)
		pt.t.TX.Bytes.Add(uint64(ob.lens[i]))
		tx.Add(s, pk)
	}
	tx.Flush(d.refused)
}

// refused counts a packet a socket did not take.
func (d *Datapath) refused(pk *offload.Packet) {
	d.drops.Drop(offload.DropSendError)
	if pk.SA != nil {
		pk.SA.Counters().Drop(offload.DropSendError)
	}
}

// burstFence checks the fence of each path of a burst once
// (datapath.Tunnel.Fence): a cluster node whose ownership of a group ended
// sends nothing more from its VIP, even when stalled past the deadline.
type burstFence struct {
	last   *path
	closed bool
}

func (b *burstFence) fenced(p *path) bool {
	if p != b.last {
		b.last = p
		b.closed = p.t.Fence != nil && !p.t.Fence()
	}
	return b.closed
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
