package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// AddSA installs an SA (XFRM_MSG_NEWSA); it fails with ErrExists if one with
// the same identity is there.
func (x *XFRM) AddSA(id ipsec.SAID, c *SAConfig) error {
	return x.installSA("add SA", msgNewSA, id, c)
}

// UpdateSA completes an SA whose SPI came from AllocSPI, or replaces an
// installed one (XFRM_MSG_UPDSA).
func (x *XFRM) UpdateSA(id ipsec.SAID, c *SAConfig) error {
	return x.installSA("update SA", msgUpdSA, id, c)
}

func (x *XFRM) installSA(what string, typ uint16, id ipsec.SAID, c *SAConfig) error {
	op := fmt.Sprintf("%s %s from %s", what, id, c.Src)
	info, err := saInfo(id, c)
	if err != nil {
		return fmt.Errorf("kernel: xfrm %s: %w", op, err)
	}
	algs, err := checkKeys(c)
	if err != nil {
		return fmt.Errorf("kernel: xfrm %s: %w", op, err)
	}
	flags := uint16(flagsAck)
	if typ == msgNewSA {
		flags |= unix.NLM_F_CREATE | unix.NLM_F_EXCL
	}
	return x.do(op, typ, flags, func(m *msgBuilder) {
		m.body(structBytes(info))
		writeSAAttrs(m, c, algs)
	}, nil)
}

// checkKeys maps the transform to kernel algorithms and checks the key
// lengths against it.
func checkKeys(c *SAConfig) (Algorithms, error) {
	algs, err := AlgorithmsFor(c.Transform)
	if err != nil {
		return algs, err
	}
	sc := driver.SessionConfig{Transform: c.Transform, CipherKey: c.CipherKey, AuthKey: c.AuthKey}
	return algs, driver.CheckConfig(&sc)
}

// saInfo builds struct xfrm_usersa_info.
func saInfo(id ipsec.SAID, c *SAConfig) (*xfrmUsersaInfo, error) {
	fam, err := family(c.Src, id)
	if err != nil {
		return nil, err
	}
	if c.ReplayWindow < 0 || c.ReplayWindow > 8*replayESNMax {
		return nil, fmt.Errorf("replay window %d out of range 0..%d", c.ReplayWindow, 8*replayESNMax)
	}
	if c.ESN && c.ReplayWindow == 0 && c.Inbound {
		return nil, errors.New("ESN on an inbound SA needs a replay window")
	}
	info := &xfrmUsersaInfo{Family: fam, Mode: xfrmMode(c.Mode), Reqid: c.ReqID}
	info.ID.Daddr.set(id.Dst)
	info.ID.SPI = be32(id.SPI)
	info.ID.Proto = uint8(id.Protocol)
	info.Saddr.set(c.Src)
	if c.Mode == ipsec.Tunnel {
		// The SA carries inner packets of either family; selectors are
		// the business of policies (strongSwan does the same).
		info.Flags |= stateAFUnspec
	} else {
		info.Sel.Family = fam
	}
	if c.ESN {
		info.Flags |= stateESN
	}
	if !useESNReplay(c) {
		info.ReplayWindow = uint8(c.ReplayWindow)
	}
	info.Lft = lifetimeCfg(c.Limits)
	return info, nil
}

// useESNReplay reports whether the replay state goes in
// XFRMA_REPLAY_ESN_VAL: with ESN, and for windows the 8-bit field of
// xfrm_usersa_info cannot hold (the kernel's legacy window is 32 at most).
func useESNReplay(c *SAConfig) bool { return c.ESN || c.ReplayWindow > 32 }

// family returns the address family of an SA from src to id.Dst; src is
// not checked when it is the zero Addr (deleting or querying an SA, which
// the kernel finds by its destination).
func family(src netip.Addr, id ipsec.SAID) (uint16, error) {
	switch {
	case !id.Dst.IsValid():
		return 0, errors.New("a destination address is required")
	case src.IsValid() && src.Is4() != id.Dst.Is4():
		return 0, errors.New("source and destination are of different families")
	case id.Protocol != transform.ESP && id.Protocol != transform.AH:
		return 0, fmt.Errorf("protocol %v is neither ESP nor AH", id.Protocol)
	case id.Dst.Is4():
		return unix.AF_INET, nil
	}
	return unix.AF_INET6, nil
}

func lifetimeCfg(l ipsec.Limits) xfrmLifetimeCfg {
	inf := func(v uint64) uint64 {
		if v == 0 {
			return xfrmInf
		}
		return v
	}
	secs := func(d time.Duration) uint64 {
		if d <= 0 {
			return 0
		}
		return uint64(math.Ceil(d.Seconds()))
	}
	return xfrmLifetimeCfg{
		SoftByteLimit: inf(l.Soft.Bytes), HardByteLimit: inf(l.Hard.Bytes),
		SoftPacketLimit: inf(l.Soft.Packets), HardPacketLimit: inf(l.Hard.Packets),
		SoftAddExpires: secs(l.Soft.Time), HardAddExpires: secs(l.Hard.Time),
	}
}

// writeSAAttrs appends the algorithms with their keys, and the options.
func writeSAAttrs(m *msgBuilder, c *SAConfig, a Algorithms) {
	switch {
	case a.AEAD != "":
		m.algo(attrAlgAEAD, a.AEAD, c.CipherKey, a.ICVBits)
	case a.Cipher != "":
		m.algo(attrAlgCrypt, a.Cipher, c.CipherKey, 0)
	}
	if a.Auth != "" {
		m.algo(attrAlgAuthTrunc, a.Auth, c.AuthKey, a.ICVBits)
	}
	if c.Encap != nil {
		e := xfrmEncapTmpl{Type: encapESPInUDP, Sport: be16(c.Encap.SrcPort), Dport: be16(c.Encap.DstPort)}
		m.attr(attrEncap, structBytes(&e))
	}
	if useESNReplay(c) {
		// The bitmap is whole 32-bit words (xfrm_replay_state_esn_len).
		words := (c.ReplayWindow + 31) / 32
		r := xfrmReplayStateESN{BmpLen: uint32(words), ReplayWindow: uint32(c.ReplayWindow)}
		var zero [replayESNMax]byte
		m.attr(attrReplayESN, structBytes(&r), zero[:4*words])
	}
	if c.IfID != 0 {
		m.attrU32(attrIfID, c.IfID)
	}
	if o := c.Offload; o != nil {
		uo := xfrmUserOffload{Ifindex: int32(o.Ifindex)}
		if c.Inbound {
			uo.Flags |= offloadInbound
		}
		if o.Packet {
			uo.Flags |= offloadPacket
		}
		m.attr(attrOffloadDev, structBytes(&uo))
	}
}

func writeMark(m *msgBuilder, mk Mark) {
	if mk != (Mark{}) {
		m.attr(attrMark, structBytes(&xfrmMark{Value: mk.Value, Mask: mk.Mask}))
	}
}

// saIDBody builds struct xfrm_usersa_id.
func saIDBody(id ipsec.SAID) (*xfrmUsersaID, error) {
	fam, err := family(netip.Addr{}, id)
	if err != nil {
		return nil, err
	}
	s := &xfrmUsersaID{SPI: be32(id.SPI), Family: fam, Proto: uint8(id.Protocol)}
	s.Daddr.set(id.Dst)
	return s, nil
}

// DeleteSA removes an SA (XFRM_MSG_DELSA); it fails with ErrNoSA if none
// matches.
func (x *XFRM) DeleteSA(id ipsec.SAID) error {
	op := "delete SA " + id.String()
	body, err := saIDBody(id)
	if err != nil {
		return fmt.Errorf("kernel: xfrm %s: %w", op, err)
	}
	return x.do(op, msgDelSA, flagsAck, func(m *msgBuilder) {
		m.body(structBytes(body))
	}, nil)
}

// QuerySA reports an SA's usage (XFRM_MSG_GETSA). The kernel's answer holds
// the SA's keys: they are read into a buffer that is wiped, never copied.
func (x *XFRM) QuerySA(id ipsec.SAID) (SAUsage, error) {
	op := "query SA " + id.String()
	body, err := saIDBody(id)
	if err != nil {
		return SAUsage{}, fmt.Errorf("kernel: xfrm %s: %w", op, err)
	}
	var u SAUsage
	found := false
	err = x.do(op, msgGetSA, flagsRequest, func(m *msgBuilder) {
		m.body(structBytes(body))
	}, func(typ uint16, data []byte) error {
		if typ != msgNewSA {
			return nil
		}
		var ok bool
		if u, ok = parseUsage(data); !ok {
			return fmt.Errorf("kernel: xfrm %s: malformed answer", op)
		}
		found = true
		return nil
	})
	if err == nil && !found {
		err = &Error{Op: op, Errno: unix.ESRCH}
	}
	return u, err
}

// parseUsage reads the counters of an XFRM_MSG_NEWSA message: struct
// xfrm_usersa_info and the XFRMA_LASTUSED attribute. It never reads past
// data and copies nothing else out of it.
func parseUsage(data []byte) (SAUsage, bool) {
	var info xfrmUsersaInfo
	if !readStruct(data, &info) {
		return SAUsage{}, false
	}
	u := SAUsage{
		Bytes: info.Curlft.Bytes, Packets: info.Curlft.Packets,
		Added: unixTime(info.Curlft.AddTime), FirstUsed: unixTime(info.Curlft.UseTime),
		ReplayDrops: info.Stats.Replay, IntegrityFailures: info.Stats.IntegrityFailed,
	}
	n := align4(len(structBytes(&info)))
	if n > len(data) {
		n = len(data)
	}
	ok := attrs(data[n:], func(typ uint16, val []byte) {
		if typ == attrLastUsed && len(val) >= 8 {
			u.LastUsed = unixTime(binary.NativeEndian.Uint64(val))
		}
	})
	return u, ok
}

func unixTime(s uint64) time.Time {
	if s == 0 || s > math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0)
}

// AllocSPI reserves an SPI in [min, max] for an inbound SA from src to
// id.Dst (XFRM_MSG_ALLOCSPI; id.SPI is ignored): the kernel makes a larval
// SA, which UpdateSA later completes; it expires on its own if never
// completed.
func (x *XFRM) AllocSPI(id ipsec.SAID, src netip.Addr, mode ipsec.Mode, reqID, minSPI, maxSPI uint32) (uint32, error) {
	op := fmt.Sprintf("allocate SPI %s->%s/%s", src, id.Dst, id.Protocol)
	if !src.IsValid() {
		return 0, fmt.Errorf("kernel: xfrm %s: a source address is required", op)
	}
	fam, err := family(src, id)
	if err != nil {
		return 0, fmt.Errorf("kernel: xfrm %s: %w", op, err)
	}
	if minSPI < 256 || minSPI > maxSPI {
		// SPIs 1 to 255 are reserved (RFC 4303 §2.1).
		return 0, fmt.Errorf("kernel: xfrm %s: bad SPI range 0x%x-0x%x", op, minSPI, maxSPI)
	}
	req := &xfrmUserspiInfo{Min: minSPI, Max: maxSPI}
	req.Info.Family, req.Info.Mode, req.Info.Reqid = fam, xfrmMode(mode), reqID
	req.Info.ID.Daddr.set(id.Dst)
	req.Info.ID.Proto = uint8(id.Protocol)
	req.Info.Saddr.set(src)
	var spi uint32
	err = x.do(op, msgAllocSPI, flagsRequest, func(m *msgBuilder) {
		m.body(structBytes(req))
	}, func(typ uint16, data []byte) error {
		var info xfrmUsersaInfo
		if typ != msgNewSA || !readStruct(data, &info) {
			return fmt.Errorf("kernel: xfrm %s: malformed answer", op)
		}
		spi = be32(info.ID.SPI)
		return nil
	})
	return spi, err
}
