package ring

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Why a ring cannot be used on an interface. Open and Probe return them
// inside a *ProbeError; test with errors.Is.
var (
	ErrNoInterface = errors.New("no such interface")
	ErrNotEthernet = errors.New("not an Ethernet interface")
	ErrDown        = errors.New("interface is down")
	ErrMTU         = errors.New("MTU too large for the ring's frames")
	ErrNoXDPSocket = errors.New("the kernel has no AF_XDP sockets")
	ErrPermission  = errors.New("not permitted (needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF)")
	ErrNoBPF       = errors.New("cannot load the XDP program")
	ErrXDPAttach   = errors.New("cannot attach the XDP program to the interface")
	ErrXDPSocket   = errors.New("cannot make the AF_XDP socket")
)

// errBusy is the kernel's answer when the interface already runs another
// XDP program: the ring never replaces it.
var errBusy = unix.EBUSY

// ProbeError says why the ring cannot run on an interface.
type ProbeError struct {
	Interface string
	Err       error
}

func (e *ProbeError) Error() string { return fmt.Sprintf("ring: %s: %v", e.Interface, e.Err) }

// Unwrap returns the reason.
func (e *ProbeError) Unwrap() error { return e.Err }

// Probe reports whether a ring can carry ESP and AH on the interface of the
// caller's network namespace: nil, or a *ProbeError that says why not. It
// opens a Conn and closes it, so it needs the same privileges.
func Probe(ifname string) error {
	c, err := Open(Config{Interface: ifname})
	if err != nil {
		return err
	}
	return c.Close()
}

// maxMTU is the largest MTU the frames hold: the kernel puts
// XDP_PACKET_HEADROOM before a received frame.
const maxMTU = FrameSize - unix.XDP_PACKET_HEADROOM - ethLen - 64

// checkInterface finds the interface and checks what the ring needs of it
// before anything is set up.
func checkInterface(name string) (*net.Interface, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, ErrNoInterface
	}
	// An Ethernet interface has a 6-byte hardware address; loopback,
	// TUN, WireGuard and IP tunnels have none.
	if len(ifi.HardwareAddr) != 6 || ifi.Flags&net.FlagLoopback != 0 {
		return nil, ErrNotEthernet
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, ErrDown
	}
	if ifi.MTU > maxMTU {
		return nil, fmt.Errorf("%w: %d > %d", ErrMTU, ifi.MTU, maxMTU)
	}
	return ifi, nil
}

// rxQueues returns the interface's receive queues in use (ethtool
// channels), 1 where the driver does not say.
func rxQueues(name string) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 1
	}
	defer unix.Close(fd)
	// struct ethtool_channels (linux/ethtool.h): cmd, then the max and
	// current rx, tx, other and combined counts. On the heap, so that the
	// address the kernel writes to stays put.
	ch := new(struct {
		cmd                                 uint32
		maxRx, maxTx, maxOther, maxCombined uint32
		rx, tx, other, combined             uint32
	})
	ch.cmd = 0x3c // ETHTOOL_GCHANNELS
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data uintptr
		_    [16]byte
	}
	copy(ifr.name[:], name)
	ifr.data = uintptr(unsafe.Pointer(ch))
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return 1
	}
	runtime.KeepAlive(ch)
	return max(1, int(ch.rx+ch.combined))
}

// classify turns a setup error into a reason: fallback, unless it is one
// already or the system says otherwise.
func classify(err error, fallback error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %w", ErrPermission, err)
	}
	for _, known := range []error{ErrNoBPF, ErrXDPAttach, ErrXDPSocket, ErrNoXDPSocket} {
		if errors.Is(err, known) {
			return err
		}
	}
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %w", ErrPermission, err)
	case errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("%w: %w", ErrNoXDPSocket, err)
	}
	return fmt.Errorf("%w: %w", fallback, err)
}
