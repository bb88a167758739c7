package kernel

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// PolicyDir is the direction of an XFRM policy.
type PolicyDir uint8

// Directions, numbered as XFRM_POLICY_IN, _OUT and _FWD.
const (
	PolicyIn  PolicyDir = 0
	PolicyOut PolicyDir = 1
	PolicyFwd PolicyDir = 2
)

func (d PolicyDir) String() string {
	return [...]string{"in", "out", "fwd"}[d%3]
}

// Policy is an XFRM policy: traffic matching the selector (Src, Dst, Proto
// and ports; zero values match all) in direction Dir must go through the SA
// that the template names. This is how packets are steered into kernel SAs:
// the kernel has no notion of ISM's secure interfaces, so the gateway
// installs one policy per tunnel selector and direction (or one with IfID for
// an XFRM interface).
type Policy struct {
	Src, Dst         netip.Prefix
	Proto            uint8  // IP protocol; 0 for any
	SrcPort, DstPort uint16 // 0 for any
	Dir              PolicyDir
	Priority         uint32 // lower wins
	Mark             Mark
	IfID             uint32
	// The template: the SA's endpoints (tunnel mode), protocol and mode,
	// and the ReqID of the SAs that may serve it.
	TunnelSrc, TunnelDst netip.Addr
	Protocol             transform.Protocol
	Mode                 ipsec.Mode
	ReqID                uint32
}

func (p *Policy) String() string {
	return fmt.Sprintf("%s->%s %s", p.Src, p.Dst, p.Dir)
}

// selector builds struct xfrm_selector from the policy's traffic selector.
func (p *Policy) selector() (xfrmSelector, error) {
	var s xfrmSelector
	if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Addr().Is4() != p.Dst.Addr().Is4() {
		return s, errors.New("source and destination prefixes of one family are required")
	}
	s.Family = unix.AF_INET
	if !p.Src.Addr().Is4() {
		s.Family = unix.AF_INET6
	}
	s.Saddr.set(p.Src.Masked().Addr())
	s.Daddr.set(p.Dst.Masked().Addr())
	s.PrefixlenS, s.PrefixlenD = uint8(p.Src.Bits()), uint8(p.Dst.Bits())
	s.Proto = p.Proto
	if p.SrcPort != 0 {
		s.Sport, s.SportMask = be16(p.SrcPort), 0xffff
	}
	if p.DstPort != 0 {
		s.Dport, s.DportMask = be16(p.DstPort), 0xffff
	}
	return s, nil
}

// AddPolicy installs a policy (XFRM_MSG_NEWPOLICY); it fails with ErrExists
// if one with the same selector, direction and mark is there.
func (x *XFRM) AddPolicy(p *Policy) error {
	op := "add policy " + p.String()
	sel, err := p.selector()
	if err != nil {
		return fmt.Errorf("kernel: xfrm %s: %w", op, err)
	}
	if p.Dir > PolicyFwd {
		return fmt.Errorf("kernel: xfrm %s: bad direction %d", op, p.Dir)
	}
	info := &xfrmUserpolicyInfo{Sel: sel, Lft: lifetimeCfg(ipsec.Limits{}), Priority: p.Priority, Dir: uint8(p.Dir), Action: policyAllow}
	tmpl := &xfrmUserTmpl{Reqid: p.ReqID, Mode: xfrmMode(p.Mode), Aalgos: ^uint32(0), Ealgos: ^uint32(0), Calgos: ^uint32(0)}
	tmpl.ID.Proto = uint8(p.Protocol)
	if p.Mode == ipsec.Tunnel {
		fam, err := family(p.TunnelSrc, ipsec.SAID{Dst: p.TunnelDst, Protocol: p.Protocol})
		if err != nil {
			return fmt.Errorf("kernel: xfrm %s: template: %w", op, err)
		}
		tmpl.Family = fam
		tmpl.Saddr.set(p.TunnelSrc)
		tmpl.ID.Daddr.set(p.TunnelDst)
	} else {
		tmpl.Family = sel.Family
	}
	return x.do(op, msgNewPolicy, flagsAck|unix.NLM_F_CREATE|unix.NLM_F_EXCL, func(m *msgBuilder) {
		m.body(structBytes(info))
		m.attr(attrTmpl, structBytes(tmpl))
		writeMark(m, p.Mark)
		if p.IfID != 0 {
			m.attrU32(attrIfID, p.IfID)
		}
	}, nil)
}

// DeletePolicy removes the policy with p's selector, direction, mark and
// interface ID (XFRM_MSG_DELPOLICY).
func (x *XFRM) DeletePolicy(p *Policy) error {
	op := "delete policy " + p.String()
	sel, err := p.selector()
	if err != nil {
		return fmt.Errorf("kernel: xfrm %s: %w", op, err)
	}
	id := &xfrmUserpolicyID{Sel: sel, Dir: uint8(p.Dir)}
	return x.do(op, msgDelPolicy, flagsAck, func(m *msgBuilder) {
		m.body(structBytes(id))
		writeMark(m, p.Mark)
		if p.IfID != 0 {
			m.attrU32(attrIfID, p.IfID)
		}
	}, nil)
}
