package offload

import (
	"encoding/binary"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// prepareOut is prepare for outbound packets. They come in runs with one
// SA, as a caller hands them over (a tunnel's packets together), and a run
// takes the SA's binding, sequence numbers and lifetime account once.
func (p *Processor) prepareOut(pkts []*Packet) {
	for i := 0; i < len(pkts); {
		sa, n := pkts[i].SA, 1
		for i+n < len(pkts) && pkts[i+n].SA == sa {
			n++
		}
		p.prepareRun(pkts[i:i+n], i, sa)
		i += n
	}
}

// prepareRun frames a run of packets for sa and queues their ops; first
// is the index of the run's first packet in the burst. The lifetime checks
// stay per packet: the SA may expire, or run out of sequence numbers, in
// the middle of a run.
func (p *Processor) prepareRun(run []*Packet, first int, sa *SA) {
	if sa == nil || sa.cfg.Direction != ipsec.Outbound {
		for _, pk := range run {
			p.drop(pk, DropNoSA)
		}
		return
	}
	p.seqLeft = 0
	limits := sa.hasLimits()
	var bnd *binding
	var pkts, bytes int64 // the run's traffic so far, charged at its end
	for j, pk := range run {
		r := sa.admit(p.now)
		if r == NotDropped && limits {
			pp, pb := p.pending(sa)
			if over, cause := sa.overLimit(pp+uint64(pkts), pb+uint64(bytes)); over {
				sa.expire(true, cause)
				r = DropLifetime
			}
		}
		if r == NotDropped {
			r = p.prepareOutbound(pk, len(run)-j)
		}
		if r == NotDropped && bnd == nil {
			if bnd = p.hold(sa); bnd == nil {
				r = DropNoSA // deleted meanwhile
			}
		}
		if r != NotDropped {
			p.drop(pk, r)
			continue
		}
		pkts++
		bytes += int64(pk.f.inner)
		pk.bnd = bnd
		p.queue(pk, first+j)
	}
	if pkts > 0 {
		p.charge(sa, pkts, bytes)
	}
}

// prepareOutbound frames an inner packet of an admitted SA around its
// payload in place and fills the op (RFC 4303 §3.3, RFC 4302 §3.3). left
// is how many packets of the run are left, this one included.
func (p *Processor) prepareOutbound(pk *Packet, left int) DropReason {
	sa := pk.SA
	b := pk.Buf
	if b == nil || b.Len <= 0 || b.Off < 0 || b.Off+b.Len > len(b.Mem) {
		return DropMalformed
	}
	f := &pk.f
	*f = framing{v6: sa.ipv6}
	pkt := b.Bytes()
	var n int // the IP packet's length
	var nh uint8
	keep := 0 // transport mode: IP header bytes kept in front
	switch pkt[0] >> 4 {
	case 4:
		ip := header.IPv4(pkt)
		if !ip.IsValid() {
			return DropMalformed
		}
		n, nh = int(ip.TotalLength()), header.ProtoIPv4
		if sa.cfg.Mode == ipsec.Transport {
			if sa.ipv6 || ip.IsFragment() {
				return DropUnsupported
			}
			keep, nh, f.nhPos = ip.HeaderLength(), ip.Protocol(), 9
		}
	case 6:
		ip := header.IPv6(pkt)
		if !ip.IsValid() {
			return DropMalformed
		}
		n, nh = header.IPv6MinimumSize+int(ip.PayloadLength()), header.ProtoIPv6
		if sa.cfg.Mode == ipsec.Transport {
			if !sa.ipv6 {
				return DropUnsupported
			}
			var r DropReason
			if keep, nh, f.nhPos, r = walkIPv6(pkt[:n], false); r != NotDropped {
				return r
			}
		}
	default:
		return DropMalformed
	}
	b.Len = n
	if keep > 0 && sa.fromESP {
		// The UDP socket writes its own IP header: the original goes.
		b.Off, b.Len, keep = b.Off+keep, b.Len-keep, 0
	}
	if sa.cfg.Transform.Protocol == transform.AH {
		return p.ahOut(pk, keep, nh, left)
	}
	return p.espOut(pk, keep, nh, left)
}

func (p *Processor) espOut(pk *Packet, keep int, nh uint8, left int) DropReason {
	sa, b, f, op := pk.SA, pk.Buf, &pk.f, &pk.op
	ivLen, icv, bs := sa.ivLen, sa.icvLen, sa.blockSize
	plain := b.Len - keep
	padLen := (bs - (plain+header.ESPTrailerSize)&(bs-1)) & (bs - 1) // block sizes are powers of 2
	f.payLen = plain + padLen + header.ESPTrailerSize
	f.esn = sa.esnICV
	f.icvMove = f.esn
	f.ipLen = keep
	if sa.cfg.Mode == ipsec.Tunnel {
		f.ipLen = sa.ipLen
	}
	udp := sa.udpLen
	insert := f.ipLen - keep + udp + header.ESPHeaderSize + ivLen
	tail := padLen + header.ESPTrailerSize + icv + 4 + p.tailroom
	if !grow(b, keep, insert, tail) {
		return DropTooBig
	}
	seq := p.takeSeq(sa, left)
	if seq == 0 {
		return DropSeqOverflow
	}
	pk.seq = seq
	pkt := b.Mem[b.Off:]
	f.hdr = f.ipLen + udp
	f.pay = f.hdr + header.ESPHeaderSize + ivLen
	f.inner = plain
	header.EncodeTrailer(pkt[b.Len:], padLen, nh)
	b.Len += padLen + header.ESPTrailerSize + icv
	header.ESP(pkt[f.hdr:]).Encode(&header.ESPFields{SPI: sa.cfg.SPI, Seq: uint32(seq)})
	iv := pkt[f.hdr+header.ESPHeaderSize : f.pay]
	op.CipherOff, op.CipherLen, op.AuthOff, op.AuthLen, op.AADLen, op.IVLen = f.pay, 0, 0, 0, 0, uint8(ivLen)
	if sa.encrypts {
		op.CipherLen = f.payLen
	}
	switch {
	case p.ivHook != nil:
		p.ivHook(iv, seq)
		copy(op.IV[:], iv)
	case sa.aead:
		// The sequence number never repeats under a key, so it is the IV
		// (RFC 4106 §3.1, RFC 7634 §2).
		binary.BigEndian.PutUint64(iv, seq)
		binary.BigEndian.PutUint64(op.IV[:], seq)
	default:
		copy(iv, p.nextIV(ivLen))
		copy(op.IV[:], iv)
	}
	op.DigestOff = f.pay + f.payLen
	if sa.aead {
		op.AADLen = setAAD(&op.AAD, sa.cfg.SPI, seq, sa.cfg.ESN)
	} else if sa.auths {
		op.AuthOff, op.AuthLen = f.hdr, header.ESPHeaderSize+ivLen+f.payLen
		if f.esn {
			// The ICV covers the high 32 bits after the payload
			// (RFC 4303 §2.2.1); they are overwritten in finish.
			binary.BigEndian.PutUint32(pkt[f.hdr+op.AuthLen:], uint32(seq>>32))
			op.AuthLen += 4
		}
		op.DigestOff = op.AuthOff + op.AuthLen
	}
	if sa.fromESP {
		return NotDropped // the UDP socket writes the IP and UDP headers
	}
	proto := uint8(header.ProtoESP)
	if udp > 0 {
		proto = header.ProtoUDP
		if keep > 0 { // in tunnel mode the SA's template has the header
			sp, dp := sa.cfg.ports()
			header.UDP(pkt[f.ipLen:]).Encode(&header.UDPFields{SrcPort: sp, DstPort: dp, Length: uint16(b.Len - f.ipLen)})
		}
	}
	if keep == 0 {
		sa.writeOuter(pkt[:b.Len], pkt[insert:], seq)
	} else {
		p.writeIP(pk, keep, proto, nil)
	}
	return NotDropped
}

// writeIP writes the outer IP header in tunnel mode, or fixes the kept one
// in transport mode, for a packet whose next protocol is proto. inner is the
// original packet (tunnel mode), read for the TOS and DF bits.
func (p *Processor) writeIP(pk *Packet, keep int, proto uint8, inner []byte) {
	sa, b, f := pk.SA, pk.Buf, &pk.f
	pkt := b.Bytes()
	if keep > 0 {
		pkt[f.nhPos] = proto
		if f.v6 {
			header.IPv6(pkt).SetPayloadLength(uint16(b.Len - header.IPv6MinimumSize))
			return
		}
		ip := header.IPv4(pkt)
		ip.SetTotalLength(uint16(b.Len))
		ip.UpdateChecksum()
		return
	}
	sa.writeOuter(pkt, inner, pk.seq)
}

// writeOuter writes tunnel mode's outer header, the SA's template with the
// packet's own fields, in front of inner (RFC 4301 §5.1.2.1: DSCP and ECN
// copied from the inner header, DF from an IPv4 inner header). pkt is the
// whole packet.
func (sa *SA) writeOuter(pkt, inner []byte, seq uint64) {
	in := (*[8]byte)(inner) // prepare checked the inner header: one bounds check for all
	var tos uint8
	var flags uint16
	if in[0]>>4 == 4 {
		ih := header.IPv4(in[:])
		tos, flags = ih.TOS(), ih.FlagsFragment()&header.IPv4FlagDF
	} else {
		tos = header.IPv6(in[:]).TrafficClass()
	}
	n := sa.outer
	if sa.ipv6 {
		copy(pkt, sa.tmpl[:n])
		ip := header.IPv6(pkt)
		ip.SetTrafficClass(tos)
		ip.SetPayloadLength(uint16(len(pkt) - header.IPv6MinimumSize))
	} else {
		// The identification need only be unique while fragments may be
		// in flight: the sequence number's low bits are.
		header.IPv4(pkt).EncodeFrom((*[header.IPv4MinimumSize]byte)(sa.tmpl[:]), sa.tmplSum, tos, uint16(len(pkt)), uint16(seq), flags)
		if sa.udpLen > 0 {
			*(*[header.UDPMinimumSize]byte)(pkt[header.IPv4MinimumSize:]) = *(*[header.UDPMinimumSize]byte)(sa.tmpl[header.IPv4MinimumSize:])
		}
	}
	if sa.udpLen > 0 {
		header.UDP(pkt[n-header.UDPMinimumSize:]).SetLength(uint16(len(pkt) - n + header.UDPMinimumSize))
	}
}

func (p *Processor) ahOut(pk *Packet, keep int, nh uint8, left int) DropReason {
	sa, b, f, op := pk.SA, pk.Buf, &pk.f, &pk.op
	icv := sa.cfg.Transform.ICVLen()
	ahLen := header.AHLength(icv, sa.ipv6)
	// Mutable IPv4 options and IPv6 extension headers would need their own
	// zeroing rules (RFC 4302 §3.3.3.1); ISM's transport mode does without.
	if keep > header.IPv4MinimumSize && !f.v6 || keep > header.IPv6MinimumSize {
		return DropUnsupported
	}
	f.ipLen = keep
	if sa.cfg.Mode == ipsec.Tunnel {
		f.ipLen = header.IPv4MinimumSize
		if sa.ipv6 {
			f.ipLen = header.IPv6MinimumSize
		}
	}
	f.inner = b.Len - keep
	insert := f.ipLen - keep + ahLen
	if !grow(b, keep, insert, icv+4+p.tailroom) {
		return DropTooBig
	}
	seq := p.takeSeq(sa, left)
	if seq == 0 {
		return DropSeqOverflow
	}
	pk.seq = seq
	pkt := b.Mem[b.Off:]
	f.hdr = f.ipLen
	header.AH(pkt[f.hdr:]).Encode(&header.AHFields{NextHeader: nh, Length: ahLen, SPI: sa.cfg.SPI, Seq: uint32(seq)})
	p.writeIP(pk, keep, header.ProtoAH, pkt[insert:])
	f.esn, f.icvMove = sa.cfg.ESN, true
	*op = driver.Op{AuthOff: 0, AuthLen: b.Len}
	if f.esn {
		binary.BigEndian.PutUint32(pkt[b.Len:], uint32(seq>>32))
		op.AuthLen += 4
	}
	op.DigestOff = op.AuthLen
	zeroMutable(pkt, f)
	return NotDropped
}

// finishOutbound puts the ICV in its place and accounts the packet.
func (p *Processor) finishOutbound(pk *Packet) DropReason {
	sa, b, f, op := pk.SA, pk.Buf, &pk.f, &pk.op
	pkt := b.Mem[b.Off:]
	icv := sa.icvLen
	if sa.cfg.Transform.Protocol == transform.AH {
		copy(pkt[f.hdr+header.AHMinimumSize:], pkt[op.DigestOff:op.DigestOff+icv])
		restoreMutable(pkt, f)
	} else if f.esn {
		copy(pkt[op.DigestOff-4:], pkt[op.DigestOff:op.DigestOff+icv])
	}
	return NotDropped
}
