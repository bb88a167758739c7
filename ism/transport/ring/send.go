package ring

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Send sends whole IP packets (IPv4 or IPv6, header included, as for a raw
// socket with IP_HDRINCL): through the ring where the next hop is resolved
// and the packet fits the MTU (the interface's, or the route's where it is
// lower: a route's mtu, or a path MTU the kernel learnt from an ICMP
// error), else through the fallback, where the kernel fragments an IPv4
// packet without DF that fits the interface but not the path. It returns how
// many were sent, with the first error; it does not keep pkts.
func (c *Conn) Send(pkts [][]byte) (int, error) {
	c.txMu.Lock()
	if c.closed.Load() {
		c.txMu.Unlock()
		return 0, net.ErrClosed
	}
	x := c.queues[0].x
	mtu := c.hops.linkMTU()
	x.reclaim()
	slow := c.slowBy[:0]
	var lastDst netip.Addr
	var lastMAC [6]byte
	var lastOK bool
	lastMTU := mtu
	n, bad := 0, 0
	for _, p := range pkts {
		h, ok := parseIP(p)
		if !ok {
			bad++
			continue
		}
		if h.dst != lastDst {
			lastDst = h.dst
			var pathMTU int
			lastMAC, pathMTU, lastOK = c.hops.lookup(h.dst)
			lastMTU = mtu
			if pathMTU > 0 {
				lastMTU = min(mtu, pathMTU)
			}
		}
		if !lastOK || len(p) > lastMTU {
			slow = append(slow, p)
			continue
		}
		if len(x.free) == 0 || x.tx.free() == 0 {
			x.tx.publish()
			if err := x.kick(); err != nil {
				c.txMu.Unlock()
				return n, fmt.Errorf("ring: send: %w", err)
			}
			x.reclaim()
			if len(x.free) == 0 || x.tx.free() == 0 {
				slow = append(slow, p) // the ring is full: let the kernel queue it
				continue
			}
		}
		addr := x.free[len(x.free)-1]
		x.free = x.free[:len(x.free)-1]
		f := x.frame(addr)
		copy(f[0:6], lastMAC[:])
		copy(f[6:12], c.src[:])
		if !h.v6 {
			binary.BigEndian.PutUint16(f[ethType:], unix.ETH_P_IP)
			copy(f[ethLen:], p)
			ipv4Checksum(f[ethLen : ethLen+h.hdrLen])
		} else {
			binary.BigEndian.PutUint16(f[ethType:], unix.ETH_P_IPV6)
			copy(f[ethLen:], p)
		}
		d := x.tx.xdpDesc(x.tx.cachedProd)
		d.Addr, d.Len, d.Options = addr, uint32(ethLen+len(p)), 0
		x.tx.cachedProd++
		n++
	}
	x.tx.publish()
	err := x.kick()
	c.sent.Add(uint64(n))
	if err != nil {
		c.txMu.Unlock()
		return n, fmt.Errorf("ring: send: %w", err)
	}
	if len(slow) > 0 {
		// Under txMu still: slow is c.slowBy's array, which the next
		// Send reuses.
		k, err := c.fb.Send(slow)
		c.slow.Add(uint64(k))
		n += k
		clear(slow)
		c.slowBy = slow[:0]
		if err != nil {
			c.txMu.Unlock()
			return n, err
		}
	}
	c.slowBy = slow[:0]
	c.txMu.Unlock()
	if bad > 0 {
		return n, fmt.Errorf("ring: %d packets are not whole IP packets", bad)
	}
	return n, nil
}

// ipHeader is what Send needs of a packet's IP header.
type ipHeader struct {
	dst    netip.Addr
	v6     bool
	hdrLen int // IPv4: the header's length with options
}

// parseIP checks that p is a whole IPv4 or IPv6 packet, its length fields
// saying len(p) (RFC 791 §3.1, RFC 8200 §3), and returns its header.
func parseIP(p []byte) (ipHeader, bool) {
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		hl := int(p[0]&0xf) * 4
		if hl < 20 || hl > len(p) || int(binary.BigEndian.Uint16(p[2:])) != len(p) {
			return ipHeader{}, false
		}
		return ipHeader{dst: netip.AddrFrom4([4]byte(p[16:20])), hdrLen: hl}, true
	case len(p) >= 40 && p[0]>>4 == 6:
		if 40+int(binary.BigEndian.Uint16(p[4:])) != len(p) {
			return ipHeader{}, false
		}
		return ipHeader{dst: netip.AddrFrom16([16]byte(p[24:40])), v6: true}, true
	}
	return ipHeader{}, false
}

// ipv4Checksum fills in an IPv4 header's checksum (RFC 791 §3.1), as the
// kernel does for a raw socket with IP_HDRINCL.
func ipv4Checksum(h []byte) {
	h[10], h[11] = 0, 0
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
}
