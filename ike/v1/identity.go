package v1

import (
	"fmt"
	"net/netip"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/selector"
)

// phase1ID encodes a phase 1 identity; protocol and port are zero
// (RFC 2407 §4.6.2: "zero or UDP port 500" during phase 1).
func phase1ID(id ike.Identity) *ID {
	switch id.Kind {
	case ike.IDAddress:
		if id.Addr.Is4() || id.Addr.Is4In6() {
			return &ID{Type: IDIPv4Addr, Data: id.Addr.Unmap().AsSlice()}
		}
		return &ID{Type: IDIPv6Addr, Data: id.Addr.AsSlice()}
	case ike.IDUserFQDN:
		return &ID{Type: IDUserFQDN, Data: []byte(id.Name)}
	case ike.IDDN:
		return &ID{Type: IDDERASN1DN, Data: []byte(id.Name)}
	}
	return &ID{Type: IDFQDN, Data: []byte(id.Name)}
}

// identityOf decodes a phase 1 identity.
func identityOf(p *ID) (ike.Identity, error) {
	switch p.Type {
	case IDIPv4Addr, IDIPv6Addr:
		a, _ := netip.AddrFromSlice(p.Data)
		return ike.AddressIdentity(a), nil
	case IDFQDN, IDUserFQDN:
		id := ike.Identity{Kind: ike.IDFQDN, Name: string(p.Data)}
		if p.Type == IDUserFQDN {
			id.Kind = ike.IDUserFQDN
		}
		if err := id.Validate(); err != nil {
			return id, err
		}
		return id, nil
	case IDDERASN1DN:
		return ike.Identity{Kind: ike.IDDN, Name: string(p.Data)}, nil
	}
	return ike.Identity{}, fmt.Errorf("v1: phase 1 identity type %d not supported", p.Type)
}

// selectorID encodes a traffic selector as an IDci or IDcr payload
// (RFC 2407 §4.6.2): an address, a subnet or a range, any protocol and
// port.
func selectorID(s selector.Selector) *ID {
	v4 := s.From.Is4()
	from, to := s.From.AsSlice(), s.To.AsSlice()
	switch {
	case s.From == s.To:
		if v4 {
			return &ID{Type: IDIPv4Addr, Data: from}
		}
		return &ID{Type: IDIPv6Addr, Data: from}
	case isPrefix(s):
		p, _ := s.Prefix()
		mask := netip.PrefixFrom(p.Addr(), p.Bits())
		m := make([]byte, len(from))
		for i := 0; i < mask.Bits(); i++ {
			m[i/8] |= 0x80 >> (i % 8)
		}
		if v4 {
			return &ID{Type: IDIPv4AddrSubnet, Data: append(from, m...)}
		}
		return &ID{Type: IDIPv6AddrSubnet, Data: append(from, m...)}
	}
	if v4 {
		return &ID{Type: IDIPv4AddrRange, Data: append(from, to...)}
	}
	return &ID{Type: IDIPv6AddrRange, Data: append(from, to...)}
}

func isPrefix(s selector.Selector) bool {
	_, ok := s.Prefix()
	return ok
}

// selectorOf decodes an IDci or IDcr payload.
func selectorOf(p *ID) (selector.Selector, error) {
	half := len(p.Data) / 2
	switch p.Type {
	case IDIPv4Addr, IDIPv6Addr:
		a, _ := netip.AddrFromSlice(p.Data)
		return selector.Host(a), nil
	case IDIPv4AddrSubnet, IDIPv6AddrSubnet:
		a, _ := netip.AddrFromSlice(p.Data[:half])
		bits, ok := maskBits(p.Data[half:])
		if !ok {
			return selector.Selector{}, fmt.Errorf("v1: non-contiguous subnet mask in ID payload")
		}
		return selector.FromPrefix(netip.PrefixFrom(a, bits)), nil
	case IDIPv4AddrRange, IDIPv6AddrRange:
		from, _ := netip.AddrFromSlice(p.Data[:half])
		to, _ := netip.AddrFromSlice(p.Data[half:])
		return selector.FromRange(from, to)
	}
	return selector.Selector{}, fmt.Errorf("v1: ID type %d is not a traffic selector", p.Type)
}

func maskBits(m []byte) (int, bool) {
	bits := 0
	for bits < len(m)*8 && m[bits/8]&(0x80>>(bits%8)) != 0 {
		bits++
	}
	for i := bits; i < len(m)*8; i++ {
		if m[i/8]&(0x80>>(i%8)) != 0 {
			return 0, false
		}
	}
	return bits, true
}

// within reports whether the selector inner lies inside outer.
func within(inner, outer selector.Selector) bool {
	return inner.From.Is4() == outer.From.Is4() && outer.Contains(inner.From) && outer.Contains(inner.To)
}
