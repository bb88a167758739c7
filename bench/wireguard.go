package bench

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/crypto/curve25519"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/netns"
)

// WireGuardResult is the wireguard-go row of `ismbench tunnel -peer
// wireguard-go`: iperf3 TCP through a wireguard-go tunnel between the same
// kind of namespaces as ISM's tunnel, and over the bare veth between them,
// in the same run.
type WireGuardResult struct {
	Peer     string  `json:"peer"` // "wireguard-go"
	Seconds  int     `json:"seconds"`
	Gbps     float64 `json:"gbps"`
	BareGbps float64 `json:"bare_gbps"`
	Ratio    float64 `json:"ratio"`
	// CPUNsPerPacket is the two devices' CPU time while iperf3 ran
	// through the tunnel over the packets it carried, counted as the
	// goodput over a full segment's TCP payload at wireguard-go's MTU
	// (wgSegment): comparable with TunnelResult's.
	CPUNsPerPacket float64 `json:"cpu_ns_per_packet"`
	// CPUs and BareCPUs are the machine's busy CPUs, as TunnelResult's.
	CPUs     float64 `json:"cpus"`
	BareCPUs float64 `json:"bare_cpus"`
}

// wgMTU is wireguard-go's default tunnel MTU.
const wgMTU = 1420

// wgSegment is the TCP payload of a full segment through wireguard-go's
// tunnel: the MTU less the IPv4 header and a TCP header with timestamps.
const wgSegment = wgMTU - 20 - 32

// MeasureWireGuard sets up namespaces a and b joined by a veth pair, as
// MeasureTunnel does, with a wireguard-go device (golang.zx2c4.com/
// wireguard/device, the module ISM already uses for TUN, in this process:
// no kernel module) in each, configured through its UAPI (IpcSet), and runs
// iperf3 for d over the bare veth and then through the tunnel, between the
// same inner addresses as ISM's tunnel.
func MeasureWireGuard(d time.Duration) (WireGuardResult, error) {
	r := WireGuardResult{Peer: "wireguard-go", Seconds: int(d.Seconds())}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return r, fmt.Errorf("bench: iperf3 is required: %w", err)
	}
	var h harness
	err := h.run(func() {
		l, a, b := peerLab(&h)
		ka, kb := wgKey(&h), wgKey(&h)
		startWireGuard(&h, l, a, ka, wgPeer{pub: kb.pub, endpoint: netip.AddrPortFrom(peerB, 51820), allowed: subnetB}, innerA)
		startWireGuard(&h, l, b, kb, wgPeer{pub: ka.pub, endpoint: netip.AddrPortFrom(peerA, 51820), allowed: subnetA}, innerB)
		waitTraffic(&h, l, a, func() string { return "wireguard-go" })
		r.BareCPUs = busyCPUs(func() { r.BareGbps = iperf(&h, l, a, b, peerA.String(), peerB.String(), d) })
		cpu0 := selfCPU()
		r.CPUs = busyCPUs(func() { r.Gbps = iperf(&h, l, a, b, innerA.String(), innerB.String(), d) })
		if pkts := r.Gbps * 1e9 / 8 * d.Seconds() / wgSegment; pkts > 0 {
			r.CPUNsPerPacket = float64(selfCPU()-cpu0) / pkts
		}
		if r.BareGbps > 0 {
			r.Ratio = r.Gbps / r.BareGbps
		}
	})
	return r, err
}

// wgKeys is a Curve25519 key pair.
type wgKeys struct{ priv, pub [32]byte }

func wgKey(h *harness) wgKeys {
	var k wgKeys
	if _, err := rand.Read(k.priv[:]); err != nil {
		h.Fatalf("bench: key: %v", err)
	}
	k.priv[0] &= 248 // clamped as WireGuard does (RFC 7748 §5)
	k.priv[31] = k.priv[31]&127 | 64
	pub, err := curve25519.X25519(k.priv[:], curve25519.Basepoint)
	if err != nil {
		h.Fatalf("bench: key: %v", err)
	}
	copy(k.pub[:], pub)
	return k
}

// wgPeer is the other side of a wireguard-go device.
type wgPeer struct {
	pub      [32]byte
	endpoint netip.AddrPort
	allowed  netip.Prefix
}

// startWireGuard runs a wireguard-go device "wg0" in namespace ns, listening on
// port 51820, with a route to the peer's subnet through it from addr (on
// the namespace's loopback: peerLab); it is closed when the benchmark
// ends.
func startWireGuard(h *harness, l *netlab.Lab, ns string, k wgKeys, p wgPeer, addr netip.Addr) {
	var dev *device.Device
	// The TUN device and its netlink socket are made on a thread inside the
	// namespace; the device's goroutines use them from anywhere. The UDP
	// sockets are opened by nsBind, inside the namespace too, whichever
	// goroutine (re)opens them.
	err := netns.Do(ns, func() error {
		t, err := tun.CreateTUN("wg0", wgMTU)
		if err != nil {
			return err
		}
		dev = device.NewDevice(t, nsBind{Bind: conn.NewDefaultBind(), ns: ns}, device.NewLogger(device.LogLevelSilent, ""))
		cfg := strings.Join([]string{
			"private_key=" + hex.EncodeToString(k.priv[:]),
			"listen_port=51820",
			"replace_peers=true",
			"public_key=" + hex.EncodeToString(p.pub[:]),
			"endpoint=" + p.endpoint.String(),
			"replace_allowed_ips=true",
			"allowed_ip=" + p.allowed.String(),
		}, "\n") + "\n"
		if err := dev.IpcSet(cfg); err != nil {
			dev.Close()
			return err
		}
		if err := dev.Up(); err != nil {
			dev.Close()
			return err
		}
		return nil
	})
	if err != nil {
		h.Fatalf("wireguard-go in %s: %v", ns, err)
	}
	h.Cleanup(dev.Close)
	l.MustRun(ns, "ip", "link", "set", "wg0", "up")
	l.MustRun(ns, "ip", "route", "add", p.allowed.String(), "dev", "wg0", "src", addr.String())
}

// nsBind opens wireguard-go's UDP sockets inside namespace ns. The device
// reopens them from its TUN event goroutine, which runs on any thread:
// wireguard-go's TUN reports "down" once at start (the link is not up
// yet) and "up" when `ip link set wg0 up` runs, and if the "down" arrives
// after Device.Up, the "up" reopens the sockets in whatever namespace that
// goroutine's thread is in, the host's, and the tunnel carries nothing
// (TestWireGuardTunnel, about one run in six).
type nsBind struct {
	conn.Bind
	ns string
}

// Open opens the sockets on a thread inside b.ns.
func (b nsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	err = netns.Do(b.ns, func() error {
		var err error
		fns, actual, err = b.Bind.Open(port)
		return err
	})
	return fns, actual, err
}
