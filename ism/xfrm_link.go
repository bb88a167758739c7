package ism

import (
	"fmt"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// xfrmLink is the "xfrm" link kind's data for rtnetlink, which has no
// driver for it: IFLA_XFRM_IF_ID, the ID that binds the interface to SAs
// and policies (<linux/if_link.h>). The zero value is not usable: the
// kernel refuses interface ID 0.
type xfrmLink struct {
	IfID uint32
}

var _ rtnetlink.LinkDriver = (*xfrmLink)(nil)

func (l *xfrmLink) New() rtnetlink.LinkDriver { return &xfrmLink{} }

func (l *xfrmLink) Kind() string { return "xfrm" }

func (l *xfrmLink) Encode(ae *netlink.AttributeEncoder) error {
	ae.Uint32(unix.IFLA_XFRM_IF_ID, l.IfID)
	return nil
}

func (l *xfrmLink) Decode(ad *netlink.AttributeDecoder) error {
	for ad.Next() {
		if ad.Type() == unix.IFLA_XFRM_IF_ID {
			l.IfID = ad.Uint32()
		}
	}
	return ad.Err()
}

// newXFRMLink creates an XFRM interface in the transport VR, so that the
// kernel looks its SAs and policies up there, moves it into the operational
// VR and sets it up. It returns the index in the operational VR.
func newXFRMLink(tr, op *vr, name string, ifID uint32) (uint32, error) {
	err := tr.rt.c.Link.New(&rtnetlink.LinkMessage{Family: unix.AF_UNSPEC, Attributes: &rtnetlink.LinkAttributes{
		Name: name, Info: &rtnetlink.LinkInfo{Kind: "xfrm", Data: &xfrmLink{IfID: ifID}},
	}})
	if err != nil {
		return 0, fmt.Errorf("ism: create XFRM interface %s in VR %s: %w", name, tr.name, err)
	}
	index, err := tr.rt.linkIndex(name)
	if err != nil {
		return 0, err
	}
	fail := func(what string, err error) (uint32, error) {
		_ = tr.rt.c.Link.Delete(index)
		return 0, fmt.Errorf("ism: XFRM interface %s: %s: %w", name, what, err)
	}
	if op != tr {
		err := tr.rt.c.Link.Set(&rtnetlink.LinkMessage{Family: unix.AF_UNSPEC, Index: index,
			Attributes: &rtnetlink.LinkAttributes{NetNS: rtnetlink.NetNSForFD(uint32(op.ns.fd))}})
		if err != nil {
			return fail("move to VR "+op.name, err)
		}
		if index, err = op.rt.linkIndex(name); err != nil {
			return 0, err
		}
	}
	if err := op.rt.linkUp(index, tunMTU); err != nil {
		_ = op.rt.c.Link.Delete(index)
		return 0, fmt.Errorf("ism: XFRM interface %s: set up: %w", name, err)
	}
	return index, nil
}
