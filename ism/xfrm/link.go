package xfrm

import (
	"fmt"

	"github.com/ismgw/ism/ism/vr"
	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// linkData is the "xfrm" link kind's data for rtnetlink, which has no
// driver for it: IFLA_XFRM_IF_ID, the ID that binds the interface to SAs
// and policies (<linux/if_link.h>). The zero value is not usable: the
// kernel refuses interface ID 0.
type linkData struct {
	IfID uint32
}

var _ rtnetlink.LinkDriver = (*linkData)(nil)

func (l *linkData) New() rtnetlink.LinkDriver { return &linkData{} }

func (l *linkData) Kind() string { return "xfrm" }

func (l *linkData) Encode(ae *netlink.AttributeEncoder) error {
	ae.Uint32(unix.IFLA_XFRM_IF_ID, l.IfID)
	return nil
}

func (l *linkData) Decode(ad *netlink.AttributeDecoder) error {
	for ad.Next() {
		if ad.Type() == unix.IFLA_XFRM_IF_ID {
			l.IfID = ad.Uint32()
		}
	}
	return ad.Err()
}

// newLink creates an XFRM interface in the transport VR, so that the
// kernel looks its SAs and policies up there, moves it into the operational
// VR and sets it up. It returns the index in the operational VR.
func newLink(tr, op *vr.VR, name string, ifID uint32) (uint32, error) {
	err := tr.Netlink.NewLink(&rtnetlink.LinkMessage{Family: unix.AF_UNSPEC, Attributes: &rtnetlink.LinkAttributes{
		Name: name, Info: &rtnetlink.LinkInfo{Kind: "xfrm", Data: &linkData{IfID: ifID}},
	}})
	if err != nil {
		return 0, fmt.Errorf("xfrm: create XFRM interface %s in VR %s: %w", name, tr.Name, err)
	}
	index, err := tr.Netlink.LinkIndex(name)
	if err != nil {
		return 0, err
	}
	if op != tr {
		err := tr.Netlink.SetLink(&rtnetlink.LinkMessage{Family: unix.AF_UNSPEC, Index: index,
			Attributes: &rtnetlink.LinkAttributes{NetNS: rtnetlink.NetNSForFD(uint32(op.NS.FD()))}})
		if err != nil {
			_ = tr.Netlink.DeleteLink(index)
			return 0, fmt.Errorf("xfrm: XFRM interface %s: move to VR %s: %w", name, op.Name, err)
		}
		if index, err = op.Netlink.LinkIndex(name); err != nil {
			return 0, err
		}
	}
	if err := op.Netlink.LinkUp(index, linkMTU); err != nil {
		_ = op.Netlink.DeleteLink(index)
		return 0, fmt.Errorf("xfrm: XFRM interface %s: set up: %w", name, err)
	}
	return index, nil
}

// linkMTU is the interface's MTU: large, because the tunnel's own MTU is
// set on its routes.
const linkMTU = 9000
