package ism

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/mdlayher/netlink"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/ismgw/ism/driver/kernel"
)

// TUNName is the name of the device that carries a VR's secure IP
// interfaces. One device per operational VR holds every secure interface's
// address; ISM tells the interfaces apart by the VR's routes (see fib), so
// that 10,000 interfaces cost 10,000 routes, not 10,000 devices.
const TUNName = "ism0"

// tunMTU is the device's MTU: large, because each secure interface's own
// MTU is set on its routes.
const tunMTU = 9000

// tunOffset is the room the TUN device needs before a packet for its
// virtio-net header.
const tunOffset = 16

// vr is a virtual router: a network namespace, with the device of its secure
// IP interfaces when it is an operational VR and the endpoints of its
// tunnels when it is a transport VR.
type vr struct {
	name string
	ns   *netns
	rt   *rtnl

	mu        sync.Mutex
	dev       tun.Device // nil until an interface needs it
	devIndex  uint32
	fib       atomic.Pointer[fib]
	endpoints map[netip.Addr]*endpoint
	closed    bool
	// installed and rules are the kernel routes and policy rules ISM
	// put in the VR; only the control plane (Gateway.mu) touches them.
	installed map[netip.Prefix]installedRoute
	rules     map[netip.Prefix]uint32
	// owned are the prefixes each tunnel routes in this VR, and policy
	// the VR's policy routes, as the last syncRoutes found them.
	owned  map[*Tunnel][]netip.Prefix
	policy []routeEntry
	// xfrm is the VR's XFRM connection and xfrmEvents its notifications,
	// once a tunnel on the XFRM datapath uses the VR as transport VR.
	xfrm       *kernel.XFRM
	xfrmEvents *netlink.Conn
}

func openVR(name, netnsName string) (*vr, error) {
	ns, err := openNetns(netnsName)
	if err != nil {
		return nil, err
	}
	rt, err := dialRtnl(ns)
	if err != nil {
		ns.close()
		return nil, err
	}
	v := &vr{name: name, ns: ns, rt: rt, endpoints: map[netip.Addr]*endpoint{}}
	v.fib.Store(&fib{})
	return v, nil
}

// device returns the VR's secure-interface device, creating it on first use.
// created reports whether this call made it.
func (v *vr) device() (dev tun.Device, created bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.dev != nil {
		return v.dev, false, nil
	}
	if v.closed {
		return nil, false, errors.New("ism: virtual router closed")
	}
	err = v.ns.do(func() error {
		var err error
		v.dev, err = tun.CreateTUN(TUNName, tunMTU)
		return err
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w (is /dev/net/tun there?)", err)
		}
		return nil, false, fmt.Errorf("ism: TUN device in VR %s: %w", v.name, err)
	}
	if v.devIndex, err = v.rt.linkIndex(TUNName); err == nil {
		err = v.rt.linkUp(v.devIndex, tunMTU)
	}
	if err != nil {
		v.dev.Close()
		v.dev = nil
		return nil, false, fmt.Errorf("ism: TUN device in VR %s: %w", v.name, err)
	}
	return v.dev, true, nil
}

// stopIO closes the VR's device and sockets, which ends the data-path
// loops that read them.
func (v *vr) stopIO() {
	v.mu.Lock()
	v.closed = true
	dev := v.dev
	eps := v.endpoints
	v.endpoints = map[netip.Addr]*endpoint{}
	events := v.xfrmEvents
	v.xfrmEvents = nil
	v.mu.Unlock()
	if events != nil {
		events.Close()
	}
	for _, ep := range eps {
		ep.close()
	}
	if dev != nil {
		dev.Close()
	}
}

// close shuts the VR: device, sockets and its netlink connection.
func (v *vr) close() {
	v.stopIO()
	v.closeXFRM()
	v.rt.close()
	v.ns.close()
}
