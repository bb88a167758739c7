package xfrm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/driver/kernel"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/transform"
)

// The kernel's XFRM notifications that the gateway listens to, from
// <linux/xfrm.h>: the multicast groups (enum xfrm_nlgroups) and message
// types (XFRM_MSG_BASE = 0x10).
const (
	groupAcquire = 1 // XFRMNLGRP_ACQUIRE
	groupExpire  = 2 // XFRMNLGRP_EXPIRE
	msgAcquire   = 0x17
	msgExpire    = 0x18
)

// Offsets in struct xfrm_usersa_info (<linux/xfrm.h>), which opens struct
// xfrm_user_expire and is 224 bytes on every Linux ABI (its 64-bit fields
// align it to 8):
//
//	struct xfrm_selector sel;      //   0, 56 bytes
//	struct xfrm_id {               //  56
//		xfrm_address_t daddr;      //  56, 16 bytes
//		__be32 spi;                //  72
//		__u8 proto;                //  76
//	} id;
//	xfrm_address_t saddr;          //  80, 16 bytes
//	struct xfrm_lifetime_cfg lft;  //  96, 64 bytes
//	struct xfrm_lifetime_cur {     // 160
//		__u64 bytes;               // 160
//		__u64 packets;             // 168
//		...
//	} curlft;
//	... stats, seq, reqid
//	__u16 family;                  // 212
//	...
//	__u8 hard;                     // 224, in struct xfrm_user_expire
const (
	saInfoDaddr  = 56
	saInfoSPI    = 72
	saInfoProto  = 76
	saInfoBytes  = 160
	saInfoPkts   = 168
	saInfoFamily = 212
	saInfoLen    = 224
	expireHard   = saInfoLen
	expireLen    = saInfoLen + 1
)

// expire is an XFRM_MSG_EXPIRE: the kernel's SA reached its soft
// limit (rekey wanted) or its hard one (the kernel deleted it).
type expire struct {
	dst   netip.Addr
	spi   uint32
	proto transform.Protocol
	hard  bool
	// usage is what the SA carried, from the kernel's curlft.
	usage kernel.SAUsage
}

// parseExpire reads struct xfrm_user_expire. It never reads past b.
func parseExpire(b []byte) (expire, error) {
	if len(b) < expireLen {
		return expire{}, fmt.Errorf("xfrm: expire: %d bytes, want %d", len(b), expireLen)
	}
	e := expire{spi: binary.BigEndian.Uint32(b[saInfoSPI:]), proto: transform.Protocol(b[saInfoProto]), hard: b[expireHard] != 0,
		usage: kernel.SAUsage{Bytes: binary.NativeEndian.Uint64(b[saInfoBytes:]), Packets: binary.NativeEndian.Uint64(b[saInfoPkts:])}}
	var ok bool
	switch binary.NativeEndian.Uint16(b[saInfoFamily:]) {
	case unix.AF_INET:
		e.dst, ok = netip.AddrFromSlice(b[saInfoDaddr : saInfoDaddr+4])
	case unix.AF_INET6:
		e.dst, ok = netip.AddrFromSlice(b[saInfoDaddr : saInfoDaddr+16])
	}
	if !ok {
		return expire{}, errors.New("xfrm: expire: unknown address family")
	}
	return e, nil
}

// acquireDst returns the start of an XFRM_MSG_ACQUIRE, struct
// xfrm_user_acquire, which opens with struct xfrm_id: the SA destination
// (xfrm_address_t, 16 bytes, an IPv4 address in its first 4).
func acquireDst(b []byte) ([]byte, bool) {
	if len(b) < 16 {
		return nil, false
	}
	return b[:16], true
}

// listen turns the kernel's notifications in one transport VR into the
// datapath's events: soft expiry asks for a rekey, hard expiry means the
// kernel deleted the SA, and an acquire asks for SAs.
func (d *Datapath) listen(v *vr.VR, c *netlink.Conn) {
	defer d.wg.Done()
	for {
		msgs, err := c.Receive()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
				return
			}
			if errors.Is(err, unix.ENOBUFS) {
				d.log.Warn("XFRM notifications overran", "vr", v.Name)
				continue
			}
			d.log.Warn("XFRM notifications", "vr", v.Name, "err", err)
			return
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case msgExpire:
				e, err := parseExpire(m.Data)
				if err != nil {
					d.log.Warn("XFRM expire", "vr", v.Name, "err", err)
					continue
				}
				d.expired(e)
			case msgAcquire:
				if dst, ok := acquireDst(m.Data); ok {
					d.acquired(dst)
				}
			}
		}
	}
}

// expired handles an expire notification for one of the datapath's SAs:
// at the hard limit the kernel deleted it, and the tunnel keeps what it
// carried.
func (d *Datapath) expired(e expire) {
	id := ipsec.SAID{Dst: e.dst, SPI: e.spi, Protocol: e.proto}
	d.mu.Lock()
	s := d.sas[id]
	d.mu.Unlock()
	if s == nil {
		return
	}
	cause := "soft limit in the kernel"
	if e.hard {
		cause = "hard limit in the kernel"
		s.p.delete(s, &e.usage)
	}
	d.events.Expired(id, e.hard, cause)
}

// acquired reports an acquire for the signaled tunnels whose destination
// is dst (an xfrm_address_t): their policy matched a packet that found no
// SA.
func (d *Datapath) acquired(dst []byte) {
	d.mu.Lock()
	var ts []*datapath.Tunnel
	for p := range d.paths {
		a := p.t.Destination.AsSlice()
		if p.t.Signaled && len(a) > 0 && bytes.Equal(dst[:len(a)], a) {
			ts = append(ts, p.t)
		}
	}
	d.mu.Unlock()
	for _, t := range ts {
		// The tunnel's SAs have its own selectors (AddSA): it wants
		// one for them all, whatever the packet.
		d.events.Acquire(t, netip.Addr{}, netip.Addr{})
	}
}
