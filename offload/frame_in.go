package offload

import (
	"encoding/binary"
	"net/netip"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// prepareInbound parses the outer packet, finds the SA, pre-checks the
// replay window and fills the op (RFC 4303 §3.4, RFC 4302 §3.4).
func (p *Processor) prepareInbound(pk *Packet) DropReason {
	pk.SA = nil
	b := pk.Buf
	if b == nil || b.Len <= 0 || b.Off < 0 || b.Off+b.Len > len(b.Mem) {
		return DropMalformed
	}
	f := &pk.f
	*f = framing{}
	pkt := b.Bytes()
	if dst := pk.Outer.Dst.Addr(); dst.IsValid() {
		// ESP in UDP from a UDP socket: it starts at the ESP header.
		if header.IsNonESP(pkt) || header.IsNATKeepalive(pkt) {
			return DropMalformed // IKE and keepalives are not for the data path
		}
		f.fromESP, f.v6 = true, dst.Is6()
		return p.espIn(pk, 0, dst)
	}
	var proto uint8
	var dst netip.Addr
	switch pkt[0] >> 4 {
	case 4:
		ip := header.IPv4(pkt)
		if !ip.IsValid() || ip.IsFragment() {
			return DropMalformed
		}
		b.Len = int(ip.TotalLength())
		f.ipLen, proto, f.nhPos, dst = ip.HeaderLength(), ip.Protocol(), 9, ip.Dst()
	case 6:
		ip := header.IPv6(pkt)
		if !ip.IsValid() {
			return DropMalformed
		}
		b.Len = header.IPv6MinimumSize + int(ip.PayloadLength())
		var r DropReason
		if f.ipLen, proto, f.nhPos, r = walkIPv6(pkt[:b.Len], true); r != NotDropped {
			return r
		}
		f.v6, dst = true, ip.Dst()
	default:
		return DropMalformed
	}
	switch proto {
	case header.ProtoESP:
		return p.espIn(pk, 0, dst)
	case header.ProtoUDP:
		if b.Len < f.ipLen+header.UDPMinimumSize || int(header.UDP(b.Bytes()[f.ipLen:]).Length()) != b.Len-f.ipLen {
			return DropMalformed
		}
		payload := b.Bytes()[f.ipLen+header.UDPMinimumSize:]
		if header.IsNonESP(payload) || header.IsNATKeepalive(payload) {
			return DropMalformed // IKE and keepalives are not for the data path
		}
		return p.espIn(pk, header.UDPMinimumSize, dst)
	case header.ProtoAH:
		return p.ahIn(pk, dst)
	}
	return DropMalformed
}

// lookupInbound finds the inbound SA and checks it may take a packet now.
func (p *Processor) lookupInbound(pk *Packet, spi uint32, proto transform.Protocol, dst netip.Addr) DropReason {
	sa := p.last
	if sa == nil || sa.cfg.SPI != spi || sa.cfg.Transform.Protocol != proto || sa.cfg.Dst != dst || sa.state.Load()&stateDeleted != 0 {
		if sa = p.e.lookup(spi, proto, dst); sa == nil || sa.cfg.Direction != ipsec.Inbound {
			return DropNoSA
		}
		p.last = sa
	}
	pk.SA = sa
	return sa.admit(p.now)
}

// precheck infers the full sequence number and checks it against the replay
// window without recording it.
func (p *Processor) precheck(pk *Packet, lo uint32) DropReason {
	sa := pk.SA
	seq, ok := sa.replay.infer(lo, sa.cfg.ESN)
	r := DropOutsideWindow
	if ok {
		r = sa.replay.check(seq)
	}
	pk.seq = seq
	return r
}

func (p *Processor) espIn(pk *Packet, udp int, dst netip.Addr) DropReason {
	b, f, op := pk.Buf, &pk.f, &pk.op
	pkt := b.Bytes()
	f.hdr = f.ipLen + udp
	if len(pkt) < f.hdr+header.ESPHeaderSize {
		return DropMalformed
	}
	esp := header.ESP(pkt[f.hdr:])
	if r := p.lookupInbound(pk, esp.SPI(), transform.ESP, dst); r != NotDropped {
		return r
	}
	sa := pk.SA
	t := sa.cfg.Transform
	ivLen, icv := t.IVLen(), t.ICVLen()
	f.pay = f.hdr + header.ESPHeaderSize + ivLen
	f.payLen = len(pkt) - f.pay - icv
	if f.payLen < header.ESPTrailerSize || t.Encrypts() && !t.Cipher.AEAD() && f.payLen%t.BlockSize() != 0 {
		return DropMalformed
	}
	if r := p.precheck(pk, esp.Seq()); r != NotDropped {
		return r
	}
	iv := pkt[f.hdr+header.ESPHeaderSize : f.pay]
	*op = driver.Op{CipherOff: f.pay, IVLen: uint8(ivLen)}
	copy(op.IV[:], iv)
	if t.Encrypts() {
		op.CipherLen = f.payLen
	}
	digest := f.pay + f.payLen
	switch {
	case t.Cipher.AEAD():
		op.AADLen = setAAD(&op.AAD, sa.cfg.SPI, pk.seq, sa.cfg.ESN)
		op.DigestOff = digest
	case t.Authenticates():
		op.AuthOff, op.AuthLen, op.DigestOff = f.hdr, digest-f.hdr, digest
		if sa.cfg.ESN {
			// Make room for the high bits before the ICV (RFC 4303
			// §2.2.1): move the ICV 4 bytes into the tailroom.
			if b.Tailroom() < 4 {
				return DropTooBig
			}
			m := b.Mem[b.Off:]
			copy(m[digest+4:digest+4+icv], m[digest:digest+icv])
			binary.BigEndian.PutUint32(m[digest:], uint32(pk.seq>>32))
			op.AuthLen += 4
			op.DigestOff += 4
		}
	}
	return NotDropped
}

func (p *Processor) ahIn(pk *Packet, dst netip.Addr) DropReason {
	b, f, op := pk.Buf, &pk.f, &pk.op
	pkt := b.Bytes()
	f.hdr = f.ipLen
	ah := header.AH(pkt[f.hdr:])
	if !ah.IsValid() {
		return DropMalformed
	}
	if r := p.lookupInbound(pk, ah.SPI(), transform.AH, dst); r != NotDropped {
		return r
	}
	sa := pk.SA
	icv := sa.cfg.Transform.ICVLen()
	if ah.Length() != header.AHLength(icv, f.v6) {
		return DropMalformed
	}
	if f.ipLen != header.IPv4MinimumSize && !f.v6 || f.v6 && f.ipLen != header.IPv6MinimumSize {
		return DropUnsupported // see ahOut
	}
	if b.Tailroom() < icv+4 {
		return DropTooBig
	}
	if r := p.precheck(pk, ah.Seq()); r != NotDropped {
		return r
	}
	m := b.Mem[b.Off:]
	*op = driver.Op{AuthLen: b.Len}
	if sa.cfg.ESN {
		binary.BigEndian.PutUint32(m[b.Len:], uint32(pk.seq>>32))
		op.AuthLen += 4
	}
	op.DigestOff = op.AuthLen
	// Only the ICV is zeroed: the padding after it, under IPv6, is part of
	// the computation (RFC 4302 §3.3.3.2.1; Linux ah6_input does the same).
	copy(m[op.DigestOff:op.DigestOff+icv], ah.ICV()[:icv])
	clear(ah.ICV()[:icv])
	zeroMutable(pkt, f)
	return NotDropped
}

// finishInbound records the sequence number now that the ICV verified,
// checks the padding and strips the framing, leaving the inner packet
// (tunnel mode) or the rebuilt original packet (transport mode).
func (p *Processor) finishInbound(pk *Packet) DropReason {
	sa, b, f := pk.SA, pk.Buf, &pk.f
	if sa.hasLimits() {
		// Packets of the burst verified so far count: the one that
		// reaches the hard limit is the last delivered (prepare admitted
		// the whole burst before any of it was accounted).
		if over, cause := sa.overLimit(p.pending(sa)); over {
			sa.expire(true, cause)
			return DropLifetime
		}
	}
	p.lockReplay(sa)
	if r := sa.replay.update(pk.seq); r != NotDropped {
		return r
	}
	pkt := b.Bytes()
	var nh uint8
	var start, n int // the payload after the IPsec framing
	if sa.cfg.Transform.Protocol == transform.AH {
		restoreMutable(pkt, f)
		ah := header.AH(pkt[f.hdr:])
		nh, start = ah.NextHeader(), f.hdr+ah.Length()
		n = b.Len - start
	} else {
		tr := header.ESPTrailer(pkt[f.pay : f.pay+f.payLen])
		if tr.PadLen()+header.ESPTrailerSize > f.payLen || !tr.PaddingOK() {
			return DropBadPadding
		}
		nh, start, n = tr.NextHeader(), f.pay, f.payLen-tr.PadLen()-header.ESPTrailerSize
		if nh == header.ProtoNoNext {
			return DropDummy
		}
	}
	if sa.cfg.Mode == ipsec.Tunnel {
		inner := pkt[start : start+n]
		switch {
		case nh == header.ProtoIPv4 && len(inner) > 0 && inner[0]>>4 == 4 && header.IPv4(inner).IsValid():
			n = int(header.IPv4(inner).TotalLength()) // drop TFC padding (RFC 4303 §2.7)
		case nh == header.ProtoIPv6 && len(inner) > 0 && inner[0]>>4 == 6 && header.IPv6(inner).IsValid():
			n = header.IPv6MinimumSize + int(header.IPv6(inner).PayloadLength())
		default:
			return DropMalformed
		}
		b.Off += start
		b.Len = n
	} else if f.fromESP {
		// The UDP socket took the IP header off: the packet gets one
		// again, from the addresses it arrived with.
		ipLen := header.IPv4MinimumSize
		if f.v6 {
			ipLen = header.IPv6MinimumSize
		}
		if b.Off+start < ipLen {
			return DropMalformed
		}
		b.Off, b.Len = b.Off+start-ipLen, ipLen+n
		pkt = b.Bytes()
		src, dst := pk.Outer.Src.Addr(), pk.Outer.Dst.Addr()
		if f.v6 {
			header.IPv6(pkt).Encode(&header.IPv6Fields{PayloadLength: uint16(n), NextHeader: nh, HopLimit: header.DefaultTTL, Src: src, Dst: dst})
		} else {
			header.IPv4(pkt).Encode(&header.IPv4Fields{TotalLength: uint16(b.Len), TTL: header.DefaultTTL, Protocol: nh, Src: src, Dst: dst})
		}
	} else {
		// Move the IP header up to the payload, over the framing.
		off := b.Off + start - f.ipLen
		copy(b.Mem[off:off+f.ipLen], b.Mem[b.Off:b.Off+f.ipLen])
		b.Off, b.Len = off, f.ipLen+n
		pkt = b.Bytes()
		pkt[f.nhPos] = nh
		if f.v6 {
			header.IPv6(pkt).SetPayloadLength(uint16(b.Len - header.IPv6MinimumSize))
		} else {
			ip := header.IPv4(pkt)
			ip.SetTotalLength(uint16(b.Len))
			ip.UpdateChecksum()
		}
	}
	pk.NextHeader = nh
	p.charge(sa, 1, int64(b.Len))
	return NotDropped
}
