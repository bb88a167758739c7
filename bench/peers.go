package bench

import (
	"fmt"
	"net/netip"
	"os/exec"
	"time"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/transform"
)

// PeersResult is one row of `ismbench tunnel -peer strongswan`: iperf3 TCP
// from namespace a to namespace b over four paths, one after the other in
// one run, each with the same ESP transform in UDP (RFC 3948; charon's
// userspace ESP always encapsulates) and the same IKE version and proposal:
// two ISM gateways with a signaled tunnel, ISM against charon, charon
// against charon (kernel-libipsec), and the bare veth.
type PeersResult struct {
	Transform         string  `json:"transform"`
	IKEVersion        int     `json:"ike_version"`
	Seconds           int     `json:"seconds"`
	Gbps              float64 `json:"gbps"` // ISM to ISM
	StrongSwanGbps    float64 `json:"strongswan_gbps"`
	ISMStrongSwanGbps float64 `json:"ism_strongswan_gbps"`
	BareGbps          float64 `json:"bare_gbps"`
	// VsStrongSwan is Gbps / StrongSwanGbps.
	VsStrongSwan float64 `json:"vs_strongswan"`
}

// The addresses of the four paths: the veth link, and an address inside
// each side's protected subnet.
var (
	peerA, peerB       = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	innerA, innerB     = netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1")
	subnetA, subnetB   = netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24")
	linkA, linkB       = netip.PrefixFrom(peerA, 24), netip.PrefixFrom(peerB, 24)
	tunnelAB, tunnelBA = signaledTunnel{Name: "bench", Source: peerA, Destination: peerB, Local: subnetA, Remote: subnetB},
		signaledTunnel{Name: "bench", Source: peerB, Destination: peerA, Local: subnetB, Remote: subnetA}
)

// MeasurePeers measures the four paths for d each with transform t and
// phase 1 proposal p.
func MeasurePeers(t transform.Transform, p IKE, d time.Duration) (PeersResult, error) {
	r := PeersResult{Transform: t.Name(), IKEVersion: p.version(), Seconds: int(d.Seconds())}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return r, fmt.Errorf("bench: iperf3 is required: %w", err)
	}
	if why := swanAvailable(); why != "" {
		return r, fmt.Errorf("bench: %s", why)
	}
	esp, err := swanESP(t)
	if err != nil {
		return r, err
	}
	if err := p.Validate(); err != nil {
		return r, err
	}
	steps := []struct {
		path string
		run  func(h *harness)
	}{
		{"ISM to ISM", func(h *harness) { r.BareGbps, r.Gbps = ismToISM(h, t, p, d) }},
		{"ISM to strongSwan", func(h *harness) { r.ISMStrongSwanGbps = ismToSwan(h, t, p, esp, d) }},
		{"strongSwan to strongSwan", func(h *harness) { r.StrongSwanGbps = swanToSwan(h, p, esp, d) }},
	}
	for _, s := range steps {
		var h harness
		if err := h.run(func() { s.run(&h) }); err != nil {
			return r, fmt.Errorf("bench: %s: %w", s.path, err)
		}
	}
	if r.StrongSwanGbps > 0 {
		r.VsStrongSwan = r.Gbps / r.StrongSwanGbps
	}
	return r, nil
}

// peerLab makes namespaces a and b joined by a veth pair, with an address
// of each side's protected subnet on its loopback.
func peerLab(h *harness) (*netlab.Lab, string, string) {
	l := netlab.New(h)
	a, b := l.NS("a"), l.NS("b")
	l.Link(a, "eth0", linkA, b, "eth0", linkB)
	l.MustRun(a, "ip", "addr", "add", netip.PrefixFrom(innerA, 32).String(), "dev", "lo")
	l.MustRun(b, "ip", "addr", "add", netip.PrefixFrom(innerB, 32).String(), "dev", "lo")
	return l, a, b
}

// ismToISM measures the bare veth and then a signaled tunnel between two
// in-process gateways.
func ismToISM(h *harness, t transform.Transform, p IKE, d time.Duration) (bare, gbps float64) {
	l, a, b := peerLab(h)
	psk := newPSK()
	ga := startGateway(h, signaledConfig(a, p, psk, t, []signaledTunnel{tunnelAB}))
	startGateway(h, signaledConfig(b, p, psk, t, []signaledTunnel{tunnelBA}))
	waitTraffic(h, l, a, func() string { s, _, _ := ga.Exec("show ipsec tunnel detail"); return s })
	return iperf(h, l, a, b, peerA.String(), peerB.String(), d), iperf(h, l, a, b, innerA.String(), innerB.String(), d)
}

// ismToSwan measures a signaled tunnel from an in-process gateway in a to
// charon in b.
func ismToSwan(h *harness, t transform.Transform, p IKE, esp string, d time.Duration) float64 {
	l, a, b := peerLab(h)
	psk := newPSK()
	ch := startCharon(h, b, charon.Conf{InstallRoutes: true, Swanctl: swanctlConf(psk, peerConn(peerB, peerA, subnetB, subnetA, p, esp))})
	g := startGateway(h, signaledConfig(a, p, psk, t, []signaledTunnel{tunnelAB}))
	waitTraffic(h, l, a, func() string {
		s, _, _ := g.Exec("show ipsec tunnel detail")
		return s + "\ncharon:\n" + ch.LogTail(30)
	})
	return iperf(h, l, a, b, innerA.String(), innerB.String(), d)
}

// swanToSwan measures a tunnel between two charons, initiated by a's.
func swanToSwan(h *harness, p IKE, esp string, d time.Duration) float64 {
	l, a, b := peerLab(h)
	psk := newPSK()
	startCharon(h, b, charon.Conf{InstallRoutes: true, Swanctl: swanctlConf(psk, peerConn(peerB, peerA, subnetB, subnetA, p, esp))})
	ca := startCharon(h, a, charon.Conf{InstallRoutes: true, Swanctl: swanctlConf(psk, peerConn(peerA, peerB, subnetA, subnetB, p, esp))})
	if out, err := ca.Initiate("bench", 20*time.Second); err != nil {
		h.Fatalf("charon initiate: %v\n%s\n%s", err, out, ca.LogTail(30))
	}
	waitTraffic(h, l, a, func() string { return ca.LogTail(30) })
	return iperf(h, l, a, b, innerA.String(), innerB.String(), d)
}

// peerConn is one side of the charon tunnels of MeasurePeers.
func peerConn(local, remote netip.Addr, localNet, remoteNet netip.Prefix, p IKE, esp string) swanPeer {
	return swanPeer{Name: "bench", Local: local.String(), Remote: remote.String(), IKE: p.swan(), ESP: esp, Version: p.version(),
		Children: []swanChild{{Name: "bench", LocalTS: localNet.String(), RemoteTS: remoteNet.String()}}}
}

// waitTraffic pings from a's inner address to b's until a ping goes
// through: the first packets start the negotiation. It fails after 60
// seconds with what state says (under make test's load wireguard-go's
// in-process devices took more than 20 s to carry a first ping, twice).
func waitTraffic(h *harness, l *netlab.Lab, a string, state func() string) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := l.Run(a, "ping", "-c", "1", "-W", "1", "-I", innerA.String(), innerB.String())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			h.Fatalf("no traffic through the tunnel: %v\n%s\n%s", err, out, state())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
