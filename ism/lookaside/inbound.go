package lookaside

import (
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/offload"
)

// Serve runs the receive side of one transport socket or ring queue, a
// pipeline whose lanes take turns to read a burst (the pipeline's intake),
// decapsulate it at once, and deliver it in the order read: each inner
// packet checked against its tunnel's selectors and written to the
// tunnel's operational VR device. It returns once the socket is closed.
func (d *Datapath) Serve(r transport.Reader) {
	var rx deliverer // Deliver's, which runs one burst at a time
	// Bursts start small and grow with the traffic, so that a gateway
	// with thousands of endpoints, most of them quiet, does not hold a
	// megabyte of buffers for each: a burst reads into one packet at
	// first, twice as many after a read that filled them all, up to
	// offload.BurstSize. The device coalesces a TCP flow's segments into
	// the first one's buffer, which then needs 64 KiB: the buffers grow
	// to that once a read brings half a burst, the sign of a flow. slots
	// and size are the intake's (NewBurst and Fill run under it), and so
	// is owned.
	slots, size, grow := 1, r.BufferSize(), 0
	if r.ESP() && d.pool == nil {
		grow = max(size, transport.BigBufferSize)
	}
	var owned int64
	pl := d.eng.NewPipeline(ipsec.Inbound, offload.PipelineConfig{Workers: d.Workers(),
		NewBurst: func(b *offload.Burst) {
			b.Owner = &inBurst{slots: make([]*offload.Packet, 0, offload.BurstSize), size: size}
		},
		Fill: func(b *offload.Burst) bool {
			ib := b.Owner.(*inBurst)
			before := owned
			defer func() { d.rxBytes.Add(owned - before) }()
			if ib.size < size {
				d.regrow(ib, size, &owned)
			}
			if have := len(ib.slots); have < slots {
				ib.slots = ib.slots[:slots]
				d.newPackets(ib.slots[have:], ib.size, &owned)
			}
			for i := range ib.slots {
				if ib.slots[i].Buf == nil { // abandoned to a stuck driver
					d.newPackets(ib.slots[i:i+1], ib.size, nil)
				}
			}
			n, err := r.Read(ib.slots)
			if err != nil {
				return false
			}
			if n == len(ib.slots) {
				slots = min(2*slots, offload.BurstSize)
			}
			if n >= offload.BurstSize/2 && grow > size {
				size = grow
			}
			b.Pkts = append(b.Pkts, ib.slots[:n]...)
			return true
		},
		Deliver: func(b *offload.Burst) { d.deliver(b.Pkts, &rx) },
	})
	d.run(pl, "socket")
	d.bufBytes.Add(-owned)
	d.rxBytes.Add(-owned)
}

// regrow gives an inbound burst new packets whose buffers hold size
// bytes; the old ones go to the garbage collector.
func (d *Datapath) regrow(ib *inBurst, size int, owned *int64) {
	old := int64(len(ib.slots)) * int64(max(ib.size, offload.BufferSize))
	*owned -= old
	d.bufBytes.Add(-old)
	d.newPackets(ib.slots, size, owned)
	ib.size = size
}

// inBurst is an inbound burst's own packets, read into.
type inBurst struct {
	slots []*offload.Packet
	size  int // what each slot's buffer holds
}

// Drop counts a packet that reached no tunnel.
func (d *Datapath) Drop(r offload.DropReason) { d.drops.Drop(r) }

// deliver checks each decapsulated packet against its tunnel's selectors
// and writes it to the tunnel's operational VR device.
func (d *Datapath) deliver(work []*offload.Packet, rx *deliverer) {
	byID := *d.byID.Load()
	for _, pk := range work {
		if pk.Drop != offload.NotDropped {
			if pk.SA != nil {
				if p := d.pathOf(&byID, pk.SA.Cookie()); p != nil {
					p.t.RX.Drop(pk.Drop)
				}
			}
			continue
		}
		p := d.pathOf(&byID, pk.SA.Cookie())
		if p == nil {
			d.drops.Drop(offload.DropNoSA)
			continue
		}
		src, dst, _ := addrs(pk.Buf.Bytes())
		if !p.t.Remote.Contains(src) || !p.t.Local.Contains(dst) {
			p.t.RX.Drop(offload.DropSelector)
			continue
		}
		if ins := p.ins.Load(); ins != nil && !ins.admits(pk.SA, src, dst) {
			// inside the tunnel's selectors, not its SA's
			p.t.RX.Drop(offload.DropSelector)
			pk.SA.Counters().Drop(offload.DropSelector)
			continue
		}
		p.t.RX.Packets.Add(1)
		p.t.RX.Bytes.Add(uint64(pk.Buf.Len))
		rx.add(p.dev, pk)
	}
	rx.flush(d)
}

// pathOf returns the path of an SA's cookie from byID, the map the burst
// started with; a path opened since it was built (publishPending) has it
// built now, and byID is the new one.
func (d *Datapath) pathOf(byID *map[uint64]*path, cookie uint64) *path {
	if p := (*byID)[cookie]; p != nil {
		return p
	}
	d.mu.Lock()
	d.publishPending()
	d.mu.Unlock()
	*byID = *d.byID.Load()
	return (*byID)[cookie]
}

// deliverer batches decapsulated packets per operational VR device. The
// zero value is ready; it is used by one goroutine at a time.
type deliverer struct {
	batches []deliverBatch
}

type deliverBatch struct {
	dev  *device
	bufs [][]byte
}

func (rx *deliverer) add(dev *device, pk *offload.Packet) {
	var b *deliverBatch
	for i := range rx.batches {
		if rx.batches[i].dev == dev {
			b = &rx.batches[i]
			break
		}
	}
	if b == nil {
		rx.batches = append(rx.batches, deliverBatch{dev: dev})
		b = &rx.batches[len(rx.batches)-1]
	}
	buf := pk.Buf
	b.bufs = append(b.bufs, buf.Mem[buf.Off-tunOffset:buf.Off+buf.Len])
}

// flush writes each batch to its device; what the device refuses is
// counted.
func (rx *deliverer) flush(d *Datapath) {
	for i := range rx.batches {
		b := &rx.batches[i]
		if len(b.bufs) == 0 {
			continue
		}
		if _, err := b.dev.dev.Write(b.bufs, tunOffset); err != nil {
			d.drops.Drop(offload.DropDeliverError)
		}
		clear(b.bufs)
		b.bufs = b.bufs[:0]
	}
}
