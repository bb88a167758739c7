package kernel

import (
	"encoding/binary"
	"net/netip"
	"unsafe"
)

// The XFRM netlink messages and structures of <linux/xfrm.h>. The structs
// below mirror the C layout (native byte order and alignment, as the kernel
// reads them); xfrm_msg_test.go checks every size and offset against the C
// header. Fields the C header marks __be16/__be32 hold big-endian values.

// Message types (enum starting at XFRM_MSG_BASE = 0x10).
const (
	msgNewSA     = 0x10
	msgDelSA     = 0x11
	msgGetSA     = 0x12
	msgNewPolicy = 0x13
	msgDelPolicy = 0x14
	msgAllocSPI  = 0x16
	msgUpdSA     = 0x1a
)

// Attribute types (enum xfrm_attr_type_t).
const (
	attrAlgCrypt     = 2  // struct xfrm_algo
	attrEncap        = 4  // struct xfrm_encap_tmpl
	attrTmpl         = 5  // struct xfrm_user_tmpl
	attrLastUsed     = 15 // __u64
	attrAlgAEAD      = 18 // struct xfrm_algo_aead
	attrAlgAuthTrunc = 20 // struct xfrm_algo_auth
	attrMark         = 21 // struct xfrm_mark
	attrReplayESN    = 23 // struct xfrm_replay_state_esn
	attrOffloadDev   = 28 // struct xfrm_user_offload
	attrIfID         = 31 // __u32
)

// Values of xfrm_usersa_info, xfrm_user_offload and friends.
const (
	stateESN       = 128 // XFRM_STATE_ESN
	stateAFUnspec  = 32  // XFRM_STATE_AF_UNSPEC: a tunnel SA carries IPv4 and IPv6
	offloadInbound = 2   // XFRM_OFFLOAD_INBOUND
	offloadPacket  = 4   // XFRM_OFFLOAD_PACKET
	encapESPInUDP  = 2   // UDP_ENCAP_ESPINUDP (RFC 3948), <linux/udp.h>
	policyAllow    = 0   // XFRM_POLICY_ALLOW
	xfrmInf        = ^uint64(0)
	// replayESNMax is XFRMA_REPLAY_ESN_MAX, the largest bitmap in bytes.
	replayESNMax = 4096
	algNameLen   = 64
)

// xfrmAddress is xfrm_address_t: a union of __be32 a4 and __be32 a6[4],
// 4-byte aligned, holding the address in network byte order.
type xfrmAddress [4]uint32

func (a *xfrmAddress) bytes() *[16]byte { return (*[16]byte)(unsafe.Pointer(a)) }

func (a *xfrmAddress) set(ip netip.Addr) {
	*a = xfrmAddress{}
	if ip.Is4() {
		v := ip.As4()
		copy(a.bytes()[:], v[:])
		return
	}
	v := ip.As16()
	copy(a.bytes()[:], v[:])
}

type xfrmSelector struct {
	Daddr, Saddr                       xfrmAddress
	Dport, DportMask, Sport, SportMask uint16 // big endian
	Family                             uint16
	PrefixlenD, PrefixlenS, Proto      uint8
	Ifindex                            int32
	User                               uint32
}

type xfrmID struct {
	Daddr xfrmAddress
	SPI   uint32 // big endian
	Proto uint8
}

type xfrmLifetimeCfg struct {
	SoftByteLimit, HardByteLimit     uint64
	SoftPacketLimit, HardPacketLimit uint64
	SoftAddExpires, HardAddExpires   uint64 // seconds
	SoftUseExpires, HardUseExpires   uint64 // seconds
}

type xfrmLifetimeCur struct {
	Bytes, Packets, AddTime, UseTime uint64
}

type xfrmStats struct {
	ReplayWindow, Replay, IntegrityFailed uint32
}

type xfrmUsersaInfo struct {
	Sel          xfrmSelector
	ID           xfrmID
	Saddr        xfrmAddress
	Lft          xfrmLifetimeCfg
	Curlft       xfrmLifetimeCur
	Stats        xfrmStats
	Seq          uint32
	Reqid        uint32
	Family       uint16
	Mode         uint8
	ReplayWindow uint8
	Flags        uint8
}

type xfrmUsersaID struct {
	Daddr  xfrmAddress
	SPI    uint32 // big endian
	Family uint16
	Proto  uint8
}

type xfrmUserspiInfo struct {
	Info     xfrmUsersaInfo
	Min, Max uint32
}

type xfrmEncapTmpl struct {
	Type         uint16
	Sport, Dport uint16 // big endian
	Oa           xfrmAddress
}

type xfrmUserTmpl struct {
	ID                     xfrmID
	Family                 uint16
	Saddr                  xfrmAddress
	Reqid                  uint32
	Mode, Share, Optional  uint8
	Aalgos, Ealgos, Calgos uint32
}

type xfrmUserpolicyInfo struct {
	Sel                       xfrmSelector
	Lft                       xfrmLifetimeCfg
	Curlft                    xfrmLifetimeCur
	Priority, Index           uint32
	Dir, Action, Flags, Share uint8
}

type xfrmUserpolicyID struct {
	Sel   xfrmSelector
	Index uint32
	Dir   uint8
}

type xfrmUserOffload struct {
	Ifindex int32
	Flags   uint8
}

type xfrmMark struct {
	Value, Mask uint32
}

// xfrmReplayStateESN is the fixed part of struct xfrm_replay_state_esn; the
// bitmap of BmpLen 32-bit words follows it.
type xfrmReplayStateESN struct {
	BmpLen, OSeq, Seq, OSeqHi, SeqHi, ReplayWindow uint32
}

// structBytes returns the memory of *p, a struct of this file, as bytes.
func structBytes[T any](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

// readStruct copies the front of b into *p and reports whether b was long
// enough. It never reads past b.
func readStruct[T any](b []byte, p *T) bool {
	dst := structBytes(p)
	if len(b) < len(dst) {
		return false
	}
	copy(dst, b)
	return true
}

// msgBuilder builds a netlink message with XFRM attributes in a buffer of
// fixed capacity that it owns, so that key bytes written into it can be wiped
// after sending: the buffer never grows, so no copy is left behind.
type msgBuilder struct {
	b        []byte
	overflow bool
}

// maxMessage bounds a request: the SA info, three algorithms with the
// longest keys, the largest replay bitmap, and the small attributes.
const maxMessage = 8192

func newMsgBuilder() *msgBuilder { return &msgBuilder{b: make([]byte, 0, maxMessage)} }

// room reports whether n more bytes fit, recording an overflow if not.
func (m *msgBuilder) room(n int) bool {
	if m.overflow || len(m.b)+align4(n) > cap(m.b) {
		m.overflow = true
		return false
	}
	return true
}

const nlmsgHeaderLen = 16

func align4(n int) int { return (n + 3) &^ 3 }

// start resets the buffer and writes a netlink header; finish fills in the
// length.
func (m *msgBuilder) start(typ, flags uint16, seq, pid uint32) {
	m.b, m.overflow = m.b[:0], false
	var h [nlmsgHeaderLen]byte
	binary.NativeEndian.PutUint16(h[4:], typ)
	binary.NativeEndian.PutUint16(h[6:], flags)
	binary.NativeEndian.PutUint32(h[8:], seq)
	binary.NativeEndian.PutUint32(h[12:], pid)
	m.b = append(m.b, h[:]...)
}

// body appends the fixed message body.
func (m *msgBuilder) body(p []byte) {
	if !m.room(len(p)) {
		return
	}
	m.b = append(m.b, p...)
	m.pad()
}

func (m *msgBuilder) pad() {
	for len(m.b)%4 != 0 {
		m.b = append(m.b, 0)
	}
}

// attr appends one attribute made of the concatenation of parts.
func (m *msgBuilder) attr(typ uint16, parts ...[]byte) {
	n := 4
	for _, p := range parts {
		n += len(p)
	}
	if n > 0xffff || !m.room(n) {
		m.overflow = true
		return
	}
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(n))
	binary.NativeEndian.PutUint16(h[2:], typ)
	m.b = append(m.b, h[:]...)
	for _, p := range parts {
		m.b = append(m.b, p...)
	}
	m.pad()
}

func (m *msgBuilder) attrU32(typ uint16, v uint32) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	m.attr(typ, b[:])
}

// algo appends an xfrm_algo, xfrm_algo_auth (with trunc bits) or
// xfrm_algo_aead (with ICV bits) attribute: name, key length in bits, the
// optional extra length, then the key.
func (m *msgBuilder) algo(typ uint16, name string, key []byte, extraBits int) {
	var hdr [algNameLen + 8]byte
	copy(hdr[:algNameLen-1], name)
	binary.NativeEndian.PutUint32(hdr[algNameLen:], uint32(8*len(key)))
	h := hdr[:algNameLen+4]
	if typ != attrAlgCrypt {
		binary.NativeEndian.PutUint32(hdr[algNameLen+4:], uint32(extraBits))
		h = hdr[:]
	}
	m.attr(typ, h, key)
}

// finish writes the total length into the header and returns the message,
// or false if it did not fit.
func (m *msgBuilder) finish() ([]byte, bool) {
	if m.overflow {
		return nil, false
	}
	binary.NativeEndian.PutUint32(m.b[0:], uint32(len(m.b)))
	return m.b, true
}

// wipe zeroes the whole buffer, keys included.
func (m *msgBuilder) wipe() {
	clear(m.b[:cap(m.b)])
	m.b = m.b[:0]
}

// attrs walks the attributes in b, calling fn for each well-formed one; it
// stops at the first malformed one and reports whether all were well formed.
func attrs(b []byte, fn func(typ uint16, val []byte)) bool {
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b[0:]))
		typ := binary.NativeEndian.Uint16(b[2:]) & 0x3fff // drop NLA_F_NESTED, NLA_F_NET_BYTEORDER
		if n < 4 || n > len(b) {
			return false
		}
		fn(typ, b[4:n])
		b = b[min(align4(n), len(b)):]
	}
	return len(b) == 0
}

// be16 and be32 convert between host and network byte order for the
// big-endian fields of the structs above.
func be16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func be32(v uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return binary.NativeEndian.Uint32(b[:])
}
