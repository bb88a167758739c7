package v1

import (
	"encoding/binary"
)

// The messages of dead peer detection (RFC 3706 §5.3): R-U-THERE and
// R-U-THERE-ACK notifies in an ISAKMP informational exchange, sent and
// received. When to send them is dpd.go's.

// dpdNotify returns the body of an R-U-THERE or R-U-THERE-ACK notify
// payload (RFC 3706 §5.3): IPsec DOI, protocol ISAKMP, the two cookies as
// a 16-byte SPI, and the sequence number as 4 bytes of data.
func dpdNotify(icookie, rcookie Cookie, t NotifyType, seq uint32) []byte {
	spi := append(append(make([]byte, 0, 16), icookie[:]...), rcookie[:]...)
	n := Notify{DOI: DOIIPsec, Protocol: ProtoISAKMP, Type: t, SPI: spi, Data: binary.BigEndian.AppendUint32(nil, seq)}
	return n.marshal()
}

// sendDPD sends an R-U-THERE or R-U-THERE-ACK on sa.
func (d *Daemon) sendDPD(sa *ikeSA, t NotifyType, seq uint32) {
	d.mu.Lock()
	body := dpdNotify(sa.icookie, sa.rcookie, t, seq)
	d.mu.Unlock()
	d.sendTo(sa, d.sealInformational(sa, []outPayload{{PayloadNotify, body}}))
}

// dpdSeq returns the sequence number of an R-U-THERE or R-U-THERE-ACK:
// sixteen bytes of cookies as SPI and four of data (RFC 3706 §5.3).
func dpdSeq(n *Notify) (uint32, bool) {
	if len(n.SPI) != 16 || len(n.Data) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(n.Data), true
}

// dpdRequest answers the peer's R-U-THERE.
func (d *Daemon) dpdRequest(sa *ikeSA, n *Notify) {
	seq, ok := dpdSeq(n)
	d.mu.Lock()
	switch {
	case !ok:
		d.counters.Malformed++
	case !sa.established || sa.dead:
		d.counters.Dropped++
		ok = false
	default:
		if !sa.peerSeqSeen || int32(seq-sa.peerSeq) > 0 {
			sa.peerSeq, sa.peerSeqSeen = seq, true
			d.heardLocked(sa)
		}
		d.counters.DPDAnswered++
	}
	d.mu.Unlock()
	if ok {
		d.sendDPD(sa, NotifyDPDRUThereAck, seq)
	}
}

// dpdAck takes the peer's answer to an inquiry: one of the sequence
// numbers sent since the inquiry started.
func (d *Daemon) dpdAck(sa *ikeSA, n *Notify) {
	seq, ok := dpdSeq(n)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !ok {
		d.counters.Malformed++
		return
	}
	p := d.dpd[sa.peer()]
	if p == nil || p.outstanding == 0 || seq-p.firstSeq > p.seq-p.firstSeq {
		d.counters.Dropped++ // late, duplicated or never asked for
		return
	}
	p.outstanding = 0
	d.heardLocked(sa)
	d.counters.DPDAcks++
}
