package ism

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
	"github.com/ismgw/ism/transform"
)

// The kernel's XFRM notifications that the gateway listens to, from
// <linux/xfrm.h>: the multicast groups (enum xfrm_nlgroups) and message
// types (XFRM_MSG_BASE = 0x10).
const (
	xfrmGroupAcquire = 1 // XFRMNLGRP_ACQUIRE
	xfrmGroupExpire  = 2 // XFRMNLGRP_EXPIRE
	xfrmMsgAcquire   = 0x17
	xfrmMsgExpire    = 0x18
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

// xfrmExpire is an XFRM_MSG_EXPIRE: the kernel's SA reached its soft
// limit (rekey wanted) or its hard one (the kernel deleted it).
type xfrmExpire struct {
	dst   netip.Addr
	spi   uint32
	proto transform.Protocol
	hard  bool
	// usage is what the SA carried, from the kernel's curlft.
	usage kernel.SAUsage
}

// parseExpire reads struct xfrm_user_expire. It never reads past b.
func parseExpire(b []byte) (xfrmExpire, error) {
	if len(b) < expireLen {
		return xfrmExpire{}, fmt.Errorf("ism: xfrm expire: %d bytes, want %d", len(b), expireLen)
	}
	e := xfrmExpire{spi: binary.BigEndian.Uint32(b[saInfoSPI:]), proto: transform.Protocol(b[saInfoProto]), hard: b[expireHard] != 0,
		usage: kernel.SAUsage{Bytes: binary.NativeEndian.Uint64(b[saInfoBytes:]), Packets: binary.NativeEndian.Uint64(b[saInfoPkts:])}}
	var ok bool
	switch binary.NativeEndian.Uint16(b[saInfoFamily:]) {
	case unix.AF_INET:
		e.dst, ok = netip.AddrFromSlice(b[saInfoDaddr : saInfoDaddr+4])
	case unix.AF_INET6:
		e.dst, ok = netip.AddrFromSlice(b[saInfoDaddr : saInfoDaddr+16])
	}
	if !ok {
		return xfrmExpire{}, errors.New("ism: xfrm expire: unknown address family")
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

// vrXFRM returns the VR's XFRM connection, opening it and the listener of
// its expire and acquire notifications on first use.
func (g *Gateway) vrXFRM(v *vr) (*kernel.XFRM, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.xfrm != nil {
		return v.xfrm, nil
	}
	if v.closed {
		return nil, errors.New("ism: virtual router closed")
	}
	x, err := kernel.OpenXFRM(v.ns.name)
	if err != nil {
		return nil, fmt.Errorf("ism: XFRM in VR %s: %w", v.name, err)
	}
	c, err := netlink.Dial(unix.NETLINK_XFRM, &netlink.Config{NetNS: v.ns.fd,
		Groups: 1<<(xfrmGroupAcquire-1) | 1<<(xfrmGroupExpire-1)})
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("ism: XFRM notifications in VR %s: %w", v.name, err)
	}
	v.xfrm, v.xfrmEvents = x, c
	g.wg.Add(1)
	go g.xfrmListen(v, c)
	return x, nil
}

// closeXFRM closes the VR's XFRM connection and listener.
func (v *vr) closeXFRM() {
	v.mu.Lock()
	x, c := v.xfrm, v.xfrmEvents
	v.xfrm, v.xfrmEvents = nil, nil
	v.mu.Unlock()
	if c != nil {
		c.Close()
	}
	if x != nil {
		x.Close()
	}
}

// xfrmListen turns the kernel's notifications in one transport VR into the
// events the software datapath raises: soft expiry asks IKE to rekey, hard
// expiry makes the SA unusable, and an acquire asks IKE for SAs.
func (g *Gateway) xfrmListen(v *vr, c *netlink.Conn) {
	defer g.wg.Done()
	for {
		msgs, err := c.Receive()
		if err != nil {
			if g.closing.Load() || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADF) {
				return
			}
			if errors.Is(err, unix.ENOBUFS) {
				g.log.Warn("XFRM notifications overran", "vr", v.name)
				continue
			}
			g.log.Warn("XFRM notifications", "vr", v.name, "err", err)
			return
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case xfrmMsgExpire:
				e, err := parseExpire(m.Data)
				if err != nil {
					g.log.Warn("XFRM expire", "vr", v.name, "err", err)
					continue
				}
				g.xfrmExpired(e)
			case xfrmMsgAcquire:
				if dst, ok := acquireDst(m.Data); ok {
					g.xfrmAcquired(dst)
				}
			}
		}
	}
}

// xfrmExpired handles an expire notification for one of the gateway's SAs.
func (g *Gateway) xfrmExpired(e xfrmExpire) {
	sa := g.xfrmLookup(e.dst, e.spi, e.proto)
	if sa == nil {
		return
	}
	t := sa.tun
	kind := "soft"
	if e.hard {
		kind = "hard"
		g.x.expires[1].Add(1)
	} else {
		g.x.expires[0].Add(1)
	}
	g.log.Info("SA event", "tunnel", t.String(), "spi", fmt.Sprintf("0x%08x", e.spi), "event", kind+" expire", "driver", xfrmDriverText)
	if e.hard {
		if p := t.xf.Load(); p != nil {
			g.xfrmDelete(t, p, sa, &e.usage)
		}
	}
	if t.signaled() {
		if d := g.ike.Load(); d != nil {
			d.Expire(ipsec.SAID{Dst: e.dst, SPI: e.spi, Protocol: e.proto}, e.hard)
		}
		return
	}
	if !e.hard {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.changeState(t, false, fmt.Sprintf("SA 0x%08x expired in the kernel", e.spi)) {
		g.log.Warn("tunnel down", "tunnel", t.String(), "reason", t.Reason())
		g.syncTunnelRoutes(t)
	}
}

// xfrmAcquired asks IKE for SAs for the signaled XFRM tunnels whose
// destination is dst (an xfrm_address_t), whose policy matched a packet that
// found no SA.
func (g *Gateway) xfrmAcquired(dst []byte) {
	for _, t := range *g.byName.Load() {
		if !t.signaled() || t.xf.Load() == nil {
			continue
		}
		t.mu.Lock()
		d := t.dest.AsSlice()
		match := len(d) > 0 && bytes.Equal(dst[:len(d)], d)
		t.mu.Unlock()
		if match {
			g.acquire(t)
		}
	}
}
