package offload

import (
	"encoding/binary"
	"net/netip"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// framing is what prepare leaves for finish. Offsets are relative to the
// packet start (Buf.Off) as it is after prepare.
type framing struct {
	ipLen  int  // IP header bytes in front (outer, or kept in transport mode)
	hdr    int  // offset of the ESP or AH header
	pay    int  // offset of the ESP payload (after the IV)
	payLen int  // ESP payload with padding and trailer
	nhPos  int  // transport mode: offset of the next-header field to rewrite
	inner  int  // outbound: bytes accounted against the lifetime
	esn    bool // the ESN high bits sit before the ICV and must go
	// icvMove: outbound, finish moves the ICV into its place (AH, or
	// ESP with the ESN high bits under the ICV).
	icvMove bool
	v6      bool
	// fromESP: inbound, the packet started at the ESP header (a UDP
	// socket took the IP and UDP headers off; Packet.Outer has them).
	fromESP bool
	mut4    header.IPv4Mutable
	mut6    header.IPv6Mutable
}

// prepareOutbound frames an inner packet around its payload in place and
// fills the op (RFC 4303 §3.3, RFC 4302 §3.3).
func (p *Processor) prepareOutbound(pk *Packet, i int) DropReason {
	sa := pk.SA
	if sa == nil || sa.cfg.Direction != ipsec.Outbound {
		return DropNoSA
	}
	if r := sa.admit(p.now); r != NotDropped {
		return r
	}
	if sa.hasLimits() {
		if over, cause := sa.overLimit(p.pending(sa)); over {
			sa.expire(true, cause)
			return DropLifetime
		}
	}
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
	var r DropReason
	if sa.t.Protocol == transform.AH {
		r = p.ahOut(pk, keep, nh, i)
	} else {
		r = p.espOut(pk, keep, nh, i)
	}
	if r == NotDropped {
		p.charge(sa, 1, int64(pk.f.inner))
	}
	return r
}

// walkIPv6 finds where ESP or AH goes in (or is found in) an IPv6 packet:
// after hop-by-hop, routing and destination options headers (RFC 4303
// §3.1.1). It returns the header bytes before that point, the protocol that
// follows and the offset of the next-header field that names it.
func walkIPv6(pkt []byte, inbound bool) (n int, proto uint8, nhPos int, r DropReason) {
	proto, n, nhPos = header.IPv6(pkt).NextHeader(), header.IPv6MinimumSize, 6
	for i := 0; header.IsExtension(proto); i++ {
		if proto == header.ProtoFragment || i == 8 {
			if inbound {
				return 0, 0, 0, DropMalformed
			}
			return 0, 0, 0, DropUnsupported
		}
		l, next, ok := header.ExtensionLength(pkt[n:], proto)
		if !ok {
			return 0, 0, 0, DropMalformed
		}
		nhPos, n, proto = n, n+l, next
	}
	return n, proto, nhPos, NotDropped
}

// grow moves the packet start back by insert bytes, carrying the first keep
// bytes (a transport-mode IP header) along, and checks the tailroom.
func grow(b *driver.Buffer, keep, insert, tail int) bool {
	if b.Off < insert || b.Tailroom() < tail {
		return false
	}
	if keep > 0 {
		copy(b.Mem[b.Off-insert:b.Off-insert+keep], b.Mem[b.Off:b.Off+keep])
	}
	b.Off -= insert
	b.Len += insert
	return true
}

func (p *Processor) espOut(pk *Packet, keep int, nh uint8, i int) DropReason {
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
	tail := padLen + header.ESPTrailerSize + icv + 4 + p.e.disp.tailroom
	if !grow(b, keep, insert, tail) {
		return DropTooBig
	}
	seq, r := p.takeSeq(sa, i)
	if r != NotDropped {
		return r
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

// setAAD writes the ESP AAD: SPI and the 32-bit sequence number, or SPI and
// the 64-bit extended sequence number (RFC 4106 §5).
func setAAD(aad *[12]byte, spi uint32, seq uint64, esn bool) uint8 {
	binary.BigEndian.PutUint32(aad[0:], spi)
	if esn {
		binary.BigEndian.PutUint64(aad[4:], seq)
		return 12
	}
	binary.BigEndian.PutUint32(aad[4:], uint32(seq))
	return 8
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
	var tos uint8
	var flags uint16
	if inner[0]>>4 == 4 {
		ih := header.IPv4(inner)
		tos, flags = ih.TOS(), ih.FlagsFragment()&header.IPv4FlagDF
	} else {
		tos = header.IPv6(inner).TrafficClass()
	}
	n := sa.outer
	if n == header.IPv4MinimumSize {
		// The identification need only be unique while fragments may be
		// in flight: the sequence number's low bits are.
		h := (*[header.IPv4MinimumSize]byte)(pkt)
		*h = [header.IPv4MinimumSize]byte(sa.tmpl[:])
		header.IPv4(h[:]).SetVariable(tos, uint16(len(pkt)), uint16(seq), flags, sa.tmplSum)
		return
	}
	copy(pkt, sa.tmpl[:n])
	if sa.ipv6 {
		ip := header.IPv6(pkt)
		ip.SetTrafficClass(tos)
		ip.SetPayloadLength(uint16(len(pkt) - header.IPv6MinimumSize))
	} else {
		header.IPv4(pkt).SetVariable(tos, uint16(len(pkt)), uint16(seq), flags, sa.tmplSum)
	}
	if sa.udpLen > 0 {
		header.UDP(pkt[n-header.UDPMinimumSize:]).SetLength(uint16(len(pkt) - n + header.UDPMinimumSize))
	}
}

func (p *Processor) ahOut(pk *Packet, keep int, nh uint8, i int) DropReason {
	sa, b, f, op := pk.SA, pk.Buf, &pk.f, &pk.op
	icv := sa.t.ICVLen()
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
	if !grow(b, keep, insert, icv+4+p.e.disp.tailroom) {
		return DropTooBig
	}
	seq, r := p.takeSeq(sa, i)
	if r != NotDropped {
		return r
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

func zeroMutable(pkt []byte, f *framing) {
	if f.v6 {
		header.IPv6(pkt).ZeroMutable(&f.mut6)
	} else {
		header.IPv4(pkt).ZeroMutable(&f.mut4)
	}
}

func restoreMutable(pkt []byte, f *framing) {
	if f.v6 {
		header.IPv6(pkt).RestoreMutable(&f.mut6)
	} else {
		header.IPv4(pkt).RestoreMutable(&f.mut4)
	}
}

// finishOutbound puts the ICV in its place and accounts the packet.
func (p *Processor) finishOutbound(pk *Packet) DropReason {
	sa, b, f, op := pk.SA, pk.Buf, &pk.f, &pk.op
	pkt := b.Mem[b.Off:]
	icv := sa.icvLen
	if sa.t.Protocol == transform.AH {
		copy(pkt[f.hdr+header.AHMinimumSize:], pkt[op.DigestOff:op.DigestOff+icv])
		restoreMutable(pkt, f)
	} else if f.esn {
		copy(pkt[op.DigestOff-4:], pkt[op.DigestOff:op.DigestOff+icv])
	}
	return NotDropped
}

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
	if sa == nil || sa.id.SPI != spi || sa.id.Protocol != proto || sa.id.Dst != dst || sa.state.Load()&stateDeleted != 0 {
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
	t := sa.t
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
	icv := sa.t.ICVLen()
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
	if sa.t.Protocol == transform.AH {
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
