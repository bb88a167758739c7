package bench

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/ism"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/transform"
)

// TunnelResult is one row of `ismbench tunnel`: iperf3 TCP through an ISM
// manual tunnel between two namespaces, and over the bare veth between the
// same namespaces, in the same run.
type TunnelResult struct {
	Transform string `json:"transform"`
	Encap     string `json:"encap"` // "esp" (IP protocol 50) or "udp" (RFC 3948)
	// Transport is how gateway a's packets left, as show says: the
	// AF_XDP ring, a raw socket, a UDP socket. Workers is each
	// pipeline's lanes (dataplane workers; 0 is auto).
	Transport string  `json:"transport"`
	Workers   int     `json:"workers"`
	Driver    string  `json:"driver,omitempty"` // -driver
	Seconds   int     `json:"seconds"`
	Gbps      float64 `json:"gbps"`
	BareGbps  float64 `json:"bare_gbps"`
	Ratio     float64 `json:"ratio"`
	// With -peer wireguard-go: wireguard-go's Gbit/s in the same run
	// (MeasureWireGuard) and Gbps over it.
	WireGuardGbps float64 `json:"wireguard_gbps,omitempty"`
	VsWireGuard   float64 `json:"vs_wireguard,omitempty"`
	// CPUNsPerPacket is the two gateways' CPU time (user and system,
	// the kernel's work in their system calls included) while iperf3
	// ran through the tunnel, over the packets gateway a sent into it:
	// what load does not bend as it bends Gbit/s.
	CPUNsPerPacket float64 `json:"cpu_ns_per_packet"`
	// CPUs and BareCPUs are how many of the machine's CPUs were busy
	// (/proc/stat: every process, the kernel's softirqs included) while
	// iperf3 ran through the tunnel and over the bare veth: the machine's
	// whole budget is its CPU count, which a tunnel bound by CPU fills.
	CPUs     float64 `json:"cpus"`
	BareCPUs float64 `json:"bare_cpus"`
}

// EncapComparison is the row of `ismbench tunnel -encap esp,udp` that sets
// the two encapsulations of one transform side by side: raw ESP's Gbit/s
// over ESP in UDP's, measured in the same run.
type EncapComparison struct {
	Transform string  `json:"transform"`
	RawVsUDP  float64 `json:"raw_vs_udp,omitempty"`
	// RawVsUDPCPU is raw ESP's CPU per packet over ESP in UDP's.
	RawVsUDPCPU float64 `json:"raw_vs_udp_cpu,omitempty"`
	// RingVsSocket is raw ESP through the gateway's default transport
	// (the AF_XDP ring where it runs) over raw ESP on raw sockets.
	RingVsSocket float64 `json:"ring_vs_socket,omitempty"`
}

// TunnelSetup is what MeasureTunnel's gateways are configured with.
type TunnelSetup struct {
	// UDP is ESP in UDP; else raw ESP, through the transport RawTransport
	// says ("dataplane raw-transport": auto, ring or socket; "" is the
	// default, socket).
	UDP          bool
	RawTransport string
	// Workers is "dataplane workers" (0: auto, GOMAXPROCS).
	Workers int
	// Driver is the gateways' crypto driver ("" is auto); with dpdk each
	// gateway gets DPDK software crypto devices of its own
	// (crypto_aesni_gcm, crypto_aesni_mb), as a DPDK device belongs to
	// one driver.
	Driver string
}

// vdevs numbers the DPDK devices MeasureTunnel makes, unique in the
// process.
var vdevs atomic.Int32

// MeasureTunnel sets up namespaces a and b joined by a veth pair, two
// in-process gateways with a manual tunnel using transform t, set up as s
// says, and runs iperf3 for d over the bare veth and then through the
// tunnel.
func MeasureTunnel(t transform.Transform, s TunnelSetup, d time.Duration) (TunnelResult, error) {
	r := TunnelResult{Transform: t.Name(), Seconds: int(d.Seconds()), Encap: "esp", Workers: s.Workers, Driver: s.Driver}
	if s.UDP {
		r.Encap = "udp"
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return r, fmt.Errorf("bench: iperf3 is required: %w", err)
	}
	var h harness
	err := h.run(func() {
		l := netlab.New(&h)
		a, b := l.NS("a"), l.NS("b")
		l.Link(a, "eth0", netip.MustParsePrefix("192.0.2.1/24"), b, "eth0", netip.MustParsePrefix("192.0.2.2/24"))
		l.MustRun(b, "ip", "addr", "add", "203.0.113.1/32", "dev", "lo")
		keys := map[string]string{}
		ga := startGateway(&h, s.global()+manualPair(t, keys, "a", a, s.UDP))
		gb := startGateway(&h, s.global()+manualPair(t, keys, "b", b, s.UDP))
		if s.Driver != "" {
			for _, g := range []*ism.Gateway{ga, gb} {
				if sas := g.Snapshot().Tunnels[0].SAs; len(sas) == 0 || sas[0].Driver != s.Driver {
					h.Fatalf("the tunnel's SAs are not on driver %s: %+v", s.Driver, sas)
				}
			}
		}
		// The tunnel must work before it is measured.
		if out, err := l.Run(a, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-I", "198.51.100.1", "203.0.113.1"); err != nil {
			h.Fatalf("no traffic through the tunnel: %v\n%s", err, out)
		}
		r.BareCPUs = busyCPUs(func() { r.BareGbps = iperf(&h, l, a, b, "192.0.2.1", "192.0.2.2", d) })
		sent := func() uint64 {
			if ts := ga.Snapshot().Tunnels; len(ts) == 1 {
				return ts[0].Outbound.Packets
			}
			return 0
		}
		p0, cpu0 := sent(), selfCPU()
		r.CPUs = busyCPUs(func() { r.Gbps = iperf(&h, l, a, b, "198.51.100.1", "203.0.113.1", d) })
		if n := sent() - p0; n > 0 {
			r.CPUNsPerPacket = float64(selfCPU()-cpu0) / float64(n)
		}
		if ts := ga.Snapshot().Tunnels; len(ts) == 1 {
			r.Transport = ts[0].Transport
		}
		if r.BareGbps > 0 {
			r.Ratio = r.Gbps / r.BareGbps
		}
	})
	return r, err
}

// global returns the dataplane lines of s.
func (s TunnelSetup) global() string {
	g := ""
	if s.Workers > 0 {
		g += fmt.Sprintf("dataplane workers %d\n", s.Workers)
	}
	if s.RawTransport != "" {
		g += "dataplane raw-transport " + s.RawTransport + "\n"
	}
	if s.Driver != "" {
		g += "driver " + s.Driver + "\n"
	}
	if s.Driver == "dpdk" {
		n := vdevs.Add(1)
		g += fmt.Sprintf("dpdk vdev crypto_aesni_gcm%d\ndpdk vdev crypto_aesni_mb%d\n", n, n)
	}
	return g
}

// manualPair returns one side's configuration of a manual tunnel between
// 192.0.2.1 (a) and 192.0.2.2 (b); keys holds the keys the two sides share.
func manualPair(t transform.Transform, keys map[string]string, side, netns string, udp bool) string {
	key := func(name string, n int) string {
		if n == 0 {
			return ""
		}
		if k, ok := keys[name]; ok {
			return k
		}
		b := make([]byte, n)
		rand.Read(b)
		keys[name] = hex.EncodeToString(b)
		return keys[name]
	}
	sa := func(spi uint32, dir string) string {
		s := fmt.Sprintf("%s spi 0x%x", t.Protocol, spi)
		if k := key(dir+"c", t.CipherKeyLen()); k != "" {
			s += " cipher-key " + k
		}
		if k := key(dir+"a", t.AuthKeyLen()); k != "" {
			s += " auth-key " + k
		}
		return s
	}
	ab, ba := sa(0x1001, "ab"), sa(0x2001, "ba")
	src, dst, addr, in, out, route := "192.0.2.1", "192.0.2.2", "198.51.100.1", ba, ab, "ip route 203.0.113.0 255.255.255.0 ipsec:bench\n"
	if side == "b" {
		src, dst, addr, in, out, route = "192.0.2.2", "192.0.2.1", "198.51.100.2", ab, ba, ""
	}
	encap := ""
	if udp {
		encap = "  tunnel udp-encapsulation\n"
	}
	return fmt.Sprintf(`virtual-router v netns %s
ipsec transform-set ts
  transform 1 %s
interface tunnel ipsec:bench
  virtual-router v
  ip address %s 255.255.255.252
  tunnel source %s
  tunnel destination %s
  tunnel transform-set ts
%s  tunnel sa inbound %s
  tunnel sa outbound %s
%s`, netns, t.Name(), addr, src, dst, encap, in, out, route)
}

func startGateway(h *harness, text string) *ism.Gateway {
	return startGatewayWith(h, text, ism.Options{})
}

// startGatewayWith builds a gateway from configuration text with options,
// on ISM's own data path (never the kernel's XFRM, which would measure the
// kernel); it is closed when the benchmark ends.
func startGatewayWith(h *harness, text string, o ism.Options) *ism.Gateway {
	cfg, err := config.Parse("bench.conf", strings.NewReader(text))
	if err != nil {
		h.Fatalf("bench config: %v", err)
	}
	o.NoXFRM = true // ISM's own data path, also where the kernel has ESP
	g, err := ism.New(cfg, o)
	if err != nil {
		h.Fatalf("gateway: %v", err)
	}
	h.Cleanup(g.Close)
	return g
}

// iperf runs an iperf3 server in b bound to dst and a client in a bound to
// src for d, and returns the TCP goodput the server received, in Gbit/s.
func iperf(h *harness, l *netlab.Lab, a, b, src, dst string, d time.Duration) float64 {
	srv := l.Command(b, "iperf3", "-s", "-1", "-B", dst)
	l.Start(srv)
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	for try := 1; ; try++ { // the server takes a moment to listen
		res.Error = ""
		cmd := l.Command(a, "iperf3", "-c", dst, "-B", src, "-t", fmt.Sprint(int(d.Seconds())), "-J", "--connect-timeout", "2000")
		killed := false
		timer := time.AfterFunc(d+30*time.Second, func() { killed = true; cmd.Process.Kill() })
		out, err := cmd.CombinedOutput()
		timer.Stop()
		// iperf3 -J may exit 0 on an error: the JSON says it.
		jerr := json.Unmarshal(out, &res)
		if !killed && try < 50 && strings.Contains(res.Error+string(out), "Connection refused") {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		switch {
		case err != nil:
			h.Fatalf("iperf3 %s -> %s: %v\n%s", src, dst, err, out)
		case jerr != nil:
			h.Fatalf("iperf3 output: %v", jerr)
		case res.Error != "":
			h.Fatalf("iperf3 %s -> %s: %s", src, dst, res.Error)
		case res.End.SumReceived.BitsPerSecond <= 0:
			h.Fatalf("iperf3 %s -> %s: nothing received\n%s", src, dst, out)
		}
		break
	}
	// The client has the result; the server, which may linger, goes now.
	_ = srv.Process.Kill()
	_ = srv.Wait()
	return res.End.SumReceived.BitsPerSecond / 1e9
}
