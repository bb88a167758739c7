package lookaside

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/ismgw/ism/ism/vr"
)

// TUNName is the name of the device that carries a VR's secure IP
// interfaces. One device per operational VR holds every secure interface's
// address; the datapath tells the interfaces apart by the VR's routes (see
// fib), so that 10,000 interfaces cost 10,000 routes, not 10,000 devices.
const TUNName = "ism0"

// tunMTU is the device's MTU: large, because each secure interface's own
// MTU is set on its routes.
const tunMTU = 9000

// tunOffset is the room the TUN device needs before a packet for its
// virtio-net header.
const tunOffset = 16

// device is an operational VR's secure-interface device, shared by the
// VR's tunnels on this datapath, and the fib its outbound pipeline reads.
type device struct {
	v     *vr.VR
	dev   tun.Device
	index uint32
	fib   atomic.Pointer[fib]
	refs  int // Datapath.mu
}

// device returns v's device with a reference taken, creating it and
// starting its outbound pipeline on first use. d.mu is held.
func (d *Datapath) device(v *vr.VR) (*device, error) {
	if dev := d.devs[v]; dev != nil {
		dev.refs++
		return dev, nil
	}
	dev := &device{v: v, refs: 1}
	dev.fib.Store(&fib{})
	err := v.NS.Do(func() error {
		var err error
		dev.dev, err = createTUN()
		return err
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w (is /dev/net/tun there?)", err)
		}
		return nil, fmt.Errorf("lookaside: TUN device in VR %s: %w", v.Name, err)
	}
	if dev.index, err = v.Netlink.LinkIndex(TUNName); err == nil {
		err = v.Netlink.LinkUp(dev.index, tunMTU)
	}
	if err != nil {
		dev.dev.Close()
		return nil, fmt.Errorf("lookaside: TUN device in VR %s: %w", v.Name, err)
	}
	d.devs[v] = dev
	d.wg.Add(1)
	go d.outbound(dev)
	return dev, nil
}

// tunBusyWait is how long createTUN tries again while the kernel still
// has the previous device of the name.
const tunBusyWait = 2 * time.Second

// createTUN creates the VR's device in the calling thread's namespace. A
// device of the same name that the datapath has just closed (a reload
// that rebuilt every tunnel of the VR) stays while any process still
// holds its descriptor: a child forked meanwhile by this process has a
// copy until it execs. The kernel refuses the name (EBUSY) until then,
// so that is tried again for a moment.
func createTUN() (tun.Device, error) {
	deadline := time.Now().Add(tunBusyWait)
	for {
		dev, err := tun.CreateTUN(TUNName, tunMTU)
		if err == nil || !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return dev, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// release drops a reference to dev; the last one closes the device, which
// ends its outbound pipeline. d.mu is held.
func (d *Datapath) release(dev *device) {
	if dev.refs--; dev.refs > 0 {
		return
	}
	if d.devs[dev.v] == dev {
		delete(d.devs, dev.v)
	}
	if !d.closed {
		dev.dev.Close()
	}
}
