package lookaside

import (
	"net/netip"
	"slices"
)

// prefixTable maps prefixes to paths with longest-prefix match. It is
// built once and then only read; the zero value is empty.
type prefixTable struct {
	lens []int // distinct prefix lengths present, longest first
	m    map[netip.Prefix]*path
}

func (p *prefixTable) add(pfx netip.Prefix, t *path) {
	if p.m == nil {
		p.m = map[netip.Prefix]*path{}
	}
	pfx = pfx.Masked()
	if _, dup := p.m[pfx]; dup {
		return // the first route for a prefix wins, as in file order
	}
	p.m[pfx] = t
	if !slices.Contains(p.lens, pfx.Bits()) {
		p.lens = append(p.lens, pfx.Bits())
		slices.Sort(p.lens)
		slices.Reverse(p.lens)
	}
}

func (p *prefixTable) lookup(a netip.Addr) *path {
	for _, l := range p.lens {
		if l > a.BitLen() {
			continue
		}
		pfx, _ := a.Prefix(l)
		if t, ok := p.m[pfx]; ok {
			return t
		}
	}
	return nil
}

// fib is an operational VR's view of which secure interface a packet that
// reached the VR's secure-interface device belongs to: source-based policy
// routes first, then the destination routes and the interfaces' own
// subnets, longest prefix first — the same decision the kernel made to send
// the packet there. A fib is immutable.
type fib struct {
	bySrc prefixTable
	byDst prefixTable
}

func (f *fib) lookup(src, dst netip.Addr) *path {
	if t := f.bySrc.lookup(src); t != nil {
		return t
	}
	return f.byDst.lookup(dst)
}
