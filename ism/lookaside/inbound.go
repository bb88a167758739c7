package lookaside

import (
	"github.com/ismgw/ism/ism/transport"
	"github.com/ismgw/ism/offload"
)

// NewReceiver returns the receiver of one transport read loop: it
// decapsulates what the loop read, checks each inner packet against its
// tunnel's selectors and writes it to the tunnel's operational VR device.
func (d *Datapath) NewReceiver() transport.Receiver {
	return &receiver{d: d, p: d.eng.NewProcessor()}
}

// receiver is owned by one read loop.
type receiver struct {
	d  *Datapath
	p  *offload.Processor
	rx deliverer
}

func (r *receiver) Alloc(pkts []*offload.Packet) { r.d.newPackets(pkts) }

func (r *receiver) Drop(reason offload.DropReason) { r.d.drops.Drop(reason) }

func (r *receiver) Receive(work []*offload.Packet) {
	d := r.d
	r.p.Decap(work)
	byID := *d.byID.Load()
	for _, pk := range work {
		if pk.Drop != offload.NotDropped {
			if pk.SA != nil {
				if p := byID[pk.SA.Cookie()]; p != nil {
					p.t.RX.Drop(pk.Drop)
				}
			}
			continue
		}
		p := byID[pk.SA.Cookie()]
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
		r.rx.add(p.dev, pk)
	}
	r.rx.flush(d)
}

// deliverer batches decapsulated packets per operational VR device. The
// zero value is ready; it is owned by one goroutine.
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
