package transport

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// UDP segmentation and receive offload (Linux 4.18 and 5.0): ESP in UDP
// leaves in one sendmsg per run of same-size datagrams to one peer
// (UDP_SEGMENT), and arrives coalesced, up to 64 KiB a read (UDP_GRO), so
// that a burst crosses the kernel once, not once a packet. This is what lets
// a userspace gateway keep up with a TCP stream (wireguard-go does the
// same).

const (
	// maxGSOSegments is the kernel's UDP_MAX_SEGMENTS.
	maxGSOSegments = 64
	// maxGSOBytes bounds a coalesced datagram (an IPv4 UDP payload).
	maxGSOBytes = 65507
	// groBufSize is a read buffer for coalesced datagrams.
	groBufSize = 1 << 16
	// groMsgs is how many coalesced datagrams a read takes.
	groMsgs = 8
)

var cmsgSpace = unix.CmsgSpace(2)

// enableGRO asks the kernel to coalesce received datagrams on fd.
func enableGRO(fd int) bool {
	return unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_GRO, 1) == nil
}

// putGSO writes a UDP_SEGMENT control message for segments of size bytes
// into oob, which must hold cmsgSpace bytes, followed by src (a source
// address's control message, or none) if it has room for it.
func putGSO(oob []byte, size uint16, src []byte) []byte {
	oob = oob[:cmsgSpace+copy(oob[cmsgSpace:cap(oob)], src)]
	clear(oob[:cmsgSpace])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], size)
	return oob
}

// gsoBatch turns a batch of single-datagram messages into GSO messages: each
// run of datagrams to one address, of one size but for a shorter last one,
// becomes one message with a UDP_SEGMENT control message. counts[i] is how
// many datagrams out[i] carries. src, a view's source address control
// message (or nil), goes with each message.
type gsoBatch struct {
	out    []ipv4.Message
	counts []int
	bufs   [][]byte
	oobs   [][]byte
}

func (gb *gsoBatch) coalesce(msgs []ipv4.Message, src []byte) {
	gb.out, gb.counts, gb.bufs = gb.out[:0], gb.counts[:0], gb.bufs[:0]
	for i := 0; i < len(msgs); {
		addr := msgs[i].Addr.(*net.UDPAddr)
		size := len(msgs[i].Buffers[0])
		total, j := size, i+1
		for j < len(msgs) && j-i < maxGSOSegments {
			l := len(msgs[j].Buffers[0])
			a := msgs[j].Addr.(*net.UDPAddr)
			if l > size || total+l > maxGSOBytes || a.Port != addr.Port || !a.IP.Equal(addr.IP) {
				break
			}
			total += l
			j++
			if l < size {
				break // a shorter datagram ends the run
			}
		}
		start := len(gb.bufs)
		for k := i; k < j; k++ {
			gb.bufs = append(gb.bufs, msgs[k].Buffers[0])
		}
		m := ipv4.Message{Buffers: gb.bufs[start:len(gb.bufs):len(gb.bufs)], Addr: addr, OOB: src}
		if j-i > 1 {
			n := len(gb.out)
			for len(gb.oobs) <= n {
				gb.oobs = append(gb.oobs, make([]byte, cmsgSpace, cmsgSpace+unix.CmsgSpace(unix.SizeofInet6Pktinfo)))
			}
			m.OOB = putGSO(gb.oobs[n], uint16(size), src)
		}
		gb.out = append(gb.out, m)
		gb.counts = append(gb.counts, j-i)
		i = j
	}
}
