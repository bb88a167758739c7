package ism

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/netns"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// e2eCase is one manual tunnel setup.
type e2eCase struct {
	transform string
	mode      ipsec.Mode
	udp       bool
	extraA    string // more lines for a's interface block
	extraB    string
	// xfrm lets a's gateway choose XFRM protocol offload where the
	// kernel has it; otherwise both stay on ISM's own data path.
	xfrm bool
	// v6 puts the tunnel's ends on IPv6 (tunnel mode): outerA and
	// outerB on the veth.
	v6 bool
	// raw is each side's "dataplane raw-transport" (a, b), default socket;
	// a capture or a raw socket in a namespace whose gateway runs an
	// AF_XDP ring sees none of the ESP the ring sends and takes.
	raw [2]string
}

func (c e2eCase) String() string {
	s := c.transform + "/" + c.mode.String()
	if c.v6 {
		s += "/ipv6"
	}
	if c.udp {
		s += "/udp"
	}
	return s
}

// keyHex returns n random key bytes in hex.
func keyHex(t *testing.T, n int) string {
	if n == 0 {
		return ""
	}
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// manualSpec is the lab of a manual tunnel between gateways A and B. In
// tunnel mode the secure interfaces sit in a and b, with 198.51.100.1/30
// and 198.51.100.2/30, and host 203.0.113.1 on b's loopback is reached
// through the tunnel. In transport mode the operational VRs are namespaces
// aop and bop, which hold the endpoint addresses themselves on loopback.
func manualSpec(t *testing.T, c e2eCase) labSpec {
	tr, ok := transform.Lookup(c.transform)
	if !ok {
		t.Fatalf("no transform %s", c.transform)
	}
	keys := func(spi uint32) string {
		s := fmt.Sprintf("%s spi 0x%x", tr.Protocol, spi)
		if ck := keyHex(t, tr.CipherKeyLen()); ck != "" {
			s += " cipher-key " + ck
		}
		if ak := keyHex(t, tr.AuthKeyLen()); ak != "" {
			s += " auth-key " + ak
		}
		return s
	}
	ab, ba := keys(0x1001), keys(0x2001) // a→b and b→a
	s := labSpec{
		prepare: func(x *lab) {
			x.c, x.ka, x.kb = c, ab, ba
			if c.mode == ipsec.Transport {
				x.lab.MustRun(x.aop, "ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
				x.lab.MustRun(x.bop, "ip", "addr", "add", "192.0.2.2/32", "dev", "lo")
			} else {
				x.lab.MustRun(x.b, "ip", "addr", "add", "203.0.113.1/32", "dev", "lo")
			}
			if c.v6 {
				x.lab.MustRun(x.a, "ip", "addr", "add", outerA6+"/64", "dev", "eth0", "nodad")
				x.lab.MustRun(x.b, "ip", "addr", "add", outerB6+"/64", "dev", "eth0", "nodad")
			}
		},
		a:     func(x *lab) string { return x.config(t, "a", ba, ab, c.extraA) },
		b:     func(x *lab) string { return x.config(t, "b", ab, ba, c.extraB) },
		aOpts: gwOpts{xfrm: c.xfrm},
	}
	if c.mode == ipsec.Transport {
		s.ops = []string{"aop", "bop"}
	}
	return s
}

// config returns side's configuration of a manual tunnel: in is the SA it
// receives with, out the one it sends with.
func (x *lab) config(t *testing.T, side, in, out, extra string) string {
	return x.manualConf(side, in, out, extra).String()
}

func (x *lab) manualConf(side, in, out, extra string) ismConf {
	ends := x.outer()
	tu := ismTunnel{vr: "tr", source: ends[0], dest: ends[1], address: "198.51.100.1 255.255.255.252",
		udp: x.c.udp, in: in, out: out, extra: extra}
	trNS, opNS := x.a, x.aop
	if side == "b" {
		tu.source, tu.dest, tu.address, trNS, opNS = ends[1], ends[0], "198.51.100.2 255.255.255.252", x.b, x.bop
	}
	c := ismConf{vrs: [][2]string{{"tr", trNS}}, transforms: []string{x.c.transform}}
	if raw := x.c.raw[map[string]int{"a": 0, "b": 1}[side]]; raw != "" {
		c.global = "dataplane raw-transport " + raw + "\n"
	}
	if x.c.mode == ipsec.Transport {
		c.vrs = append(c.vrs, [2]string{"op", opNS})
		tu.vr, tu.transportVR, tu.transport, tu.address = "op", "tr", true, ""
	} else if side == "a" {
		tu.routes = []string{"203.0.113.0 255.255.255.0"}
	}
	c.tunnels = []ismTunnel{tu}
	return c
}

// The tunnel's ends on IPv6 (e2eCase.v6).
const (
	outerA6 = "2001:db8:2::1"
	outerB6 = "2001:db8:2::2"
)

// outer returns a manual tunnel's ends: a's, then b's.
func (x *lab) outer() [2]string {
	if x.c.v6 {
		return [2]string{outerA6, outerB6}
	}
	return [2]string{"192.0.2.1", "192.0.2.2"}
}

// from and to are the inner addresses a pings b with, and the namespaces
// they live in.
func (x *lab) from() (ns, addr string) {
	if x.c.mode == ipsec.Transport {
		return x.aop, "192.0.2.1"
	}
	return x.a, "198.51.100.1"
}

func (x *lab) to() (ns, addr string) {
	if x.c.mode == ipsec.Transport {
		return x.bop, "192.0.2.2"
	}
	return x.b, "203.0.113.1"
}

func (x *lab) ping(t *testing.T, n int) error {
	ns, src := x.from()
	_, dst := x.to()
	// -W, not -w: ping sends n echoes, no more (-w sends on while the
	// answers are late, which tests counting packets would see), and
	// succeeds when one is answered.
	var tu *Tunnel
	var tx0, rx0 uint64
	if x.ga != nil {
		if tu = x.ga.tunnelByName("t1"); tu != nil {
			tx0, rx0 = tu.d.TX.Packets.Load(), tu.d.RX.Packets.Load()
		}
	}
	out, err := x.lab.Run(ns, "ping", "-c", fmt.Sprint(n), "-i", "0.1", "-W", "10", "-I", src, dst)
	if err != nil {
		return fmt.Errorf("ping %s → %s: %v\n%s", src, dst, err, out)
	}
	if tu != nil {
		// The gateway counts a packet once it has delivered it: ping can
		// have its last answer before a counts it.
		waitFor(3*time.Second, func() bool {
			return tu.d.TX.Packets.Load()-tx0 >= uint64(n) && tu.d.RX.Packets.Load()-rx0 >= uint64(n)
		})
	}
	return nil
}

// transfer sends size random bytes over TCP from a to b through the tunnel
// and checks that they arrive intact.
func (x *lab) transfer(t *testing.T, size int) {
	t.Helper()
	ans, aaddr := x.from()
	bns, baddr := x.to()
	transferBetween(t, ans, aaddr, bns, baddr, size)
}

// transferIdle is how long a transfer may go without a byte arriving.
// Its whole length is not bounded but by transferMax: on a loaded machine
// with the race detector, 3DES through sixteen labs at once moves tens of
// kilobytes a second, and keeps moving.
const (
	transferIdle = 20 * time.Second
	transferMax  = 5 * time.Minute
)

// transferBetween sends size random bytes over TCP from src in namespace
// fromNS to dst in toNS and checks that they arrive intact. A transfer
// that stops moving for transferIdle fails, with what says where its
// packets are (stalled), taken while both ends still hold the connection.
func transferBetween(t *testing.T, fromNS, src, toNS, dst string, size int) {
	t.Helper()
	var ln net.Listener
	inNS(t, toNS, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(dst, "5001"))
		return err
	})
	defer ln.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.Copy(h, idleReader{c.(*net.TCPConn)})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Logf("the transfer has not moved for %v at %d of %d bytes", transferIdle, n, size)
			stalled(t, fromNS, toNS)
		}
		got <- result{[32]byte(h.Sum(nil)), n, err}
	}()
	var c net.Conn
	inNS(t, fromNS, func() (err error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err = d.Dial("tcp", net.JoinHostPort(dst, "5001"))
		return err
	})
	data := make([]byte, size)
	rand.Read(data)
	c.SetDeadline(time.Now().Add(transferMax))
	if _, err := c.Write(data); err != nil {
		select {
		case r := <-got: // the receiver's end, a stall, comes first
			t.Fatalf("TCP write through the tunnel: %v; %d of %d bytes arrived: %v", err, r.n, size, r.err)
		case <-time.After(time.Second):
			t.Fatalf("TCP write through the tunnel: %v", err)
		}
	}
	c.Close()
	select {
	case r := <-got:
		if r.sum != sha256.Sum256(data) {
			t.Fatalf("TCP transfer through the tunnel: data differs (%d of %d bytes arrived: %v)", r.n, size, r.err)
		}
	case <-time.After(transferMax):
		t.Fatal("TCP transfer through the tunnel timed out")
	}
}

// idleReader reads a connection with a deadline transferIdle after each
// read.
type idleReader struct{ c *net.TCPConn }

func (r idleReader) Read(p []byte) (int, error) {
	r.c.SetReadDeadline(time.Now().Add(transferIdle))
	return r.c.Read(p)
}

// stalled logs what says where a stalled transfer's packets are: the TCP
// sockets' state and the links' counters in both namespaces, and the
// stacks of the data path's goroutines (every gateway of the process).
func stalled(t *testing.T, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		for _, cmd := range [][]string{{"ss", "-tin"}, {"ip", "-s", "link"}, {"ip", "route"}, {"nstat", "-as"}} {
			out, err := runIn(ns, cmd...)
			t.Logf("%s in %s (%v):\n%s", strings.Join(cmd, " "), ns, err, out)
		}
	}
	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var keep []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "ism/ism/lookaside") || strings.Contains(g, "ism/ism/transport") || strings.Contains(g, "ism/offload") {
			keep = append(keep, g)
		}
	}
	t.Logf("the data path's goroutines (%d):\n%s", len(keep), strings.Join(keep, "\n\n"))
}

// runIn runs a command in a namespace and returns its combined output.
func runIn(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

// inNS runs fn inside the named namespace.
func inNS(t *testing.T, name string, fn func() error) {
	t.Helper()
	if err := netns.Do(name, fn); err != nil {
		t.Fatal(err)
	}
}

// saRef names one SA of a tunnel, read through `show ipsec sa`: two refs
// are equal when they name the same SA (SPI and creation).
type saRef struct {
	g       *Gateway
	spi     string
	created time.Time
}

// sas returns a tunnel's current outbound and newest inbound SA.
func sas(g *Gateway, name string) (out, in saRef) {
	for _, s := range g.Tunnels() {
		if s.Name != "ipsec:"+name {
			continue
		}
		for _, sa := range s.SAs {
			r := saRef{g, sa.SPI, sa.Created}
			if sa.Direction == ipsec.Outbound.String() {
				out = r
			} else {
				in = r
			}
		}
	}
	return out, in
}

// status returns the SA's status now; the zero status once it is gone.
func (r saRef) status() datapath.SAStatus {
	for _, s := range r.g.Tunnels() {
		for _, sa := range s.SAs {
			if sa.SPI == r.spi && sa.Created.Equal(r.created) {
				return sa
			}
		}
	}
	return datapath.SAStatus{}
}

func (r saRef) Packets() uint64 { return r.status().Packets }
func (r saRef) Seq() uint64     { return r.status().Seq }
func (r saRef) State() string   { return r.status().State }

func (r saRef) Drops() map[string]uint64 { return r.status().Drops }

// seedTransforms are the manual transforms tested end to end: the seed's and
// AES-CBC and AES-GCM.
var seedTransforms = []string{
	"esp-des-hmac-md5", "esp-des-hmac-sha", "esp-3des-hmac-md5", "esp-3des-hmac-sha",
	"esp-null-hmac-md5", "esp-null-hmac-sha", "ah-hmac-md5", "ah-hmac-sha",
	"esp-aes128-hmac-sha", "esp-aes128-gcm16",
}

// TestManualTunnels: ping and a TCP transfer through a manual tunnel for each
// seed transform and AES-CBC and AES-GCM, in tunnel and transport mode, with
// raw ESP and ESP in UDP; the SA counters on each side match what the other
// side sent, and nothing is dropped.
func TestManualTunnels(t *testing.T) {
	t.Parallel()
	var cases []e2eCase
	for _, tr := range seedTransforms {
		for _, mode := range []ipsec.Mode{ipsec.Tunnel, ipsec.Transport} {
			cases = append(cases, e2eCase{transform: tr, mode: mode})
			if !strings.HasPrefix(tr, "ah-") {
				cases = append(cases, e2eCase{transform: tr, mode: mode, udp: true})
			}
		}
	}
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			x := newLab(t, manualSpec(t, c))
			if err := x.ping(t, 5); err != nil {
				t.Fatal(err)
			}
			aout, ain := sas(x.ga, "t1")
			bout, bin := sas(x.gb, "t1")
			// ping is done once it has its replies; the last ones may
			// still be on their way through the receiving gateway.
			waitFor(3*time.Second, func() bool { return min(aout.Packets(), bin.Packets(), bout.Packets(), ain.Packets()) >= 5 })
			// ping sends another echo for one whose answer is lost.
			waitFor(3*time.Second, func() bool { return bin.Packets() >= aout.Packets() && ain.Packets() >= bout.Packets() })
			if aout.Packets() != bin.Packets() || bout.Packets() != ain.Packets() || min(aout.Packets(), bout.Packets()) < 5 {
				t.Fatalf("after 5 pings: a out %d, b in %d, b out %d, a in %d; want 5 or more each, what one sent the other took",
					aout.Packets(), bin.Packets(), bout.Packets(), ain.Packets())
			}
			x.transfer(t, 1<<20)
			// The last ACKs may still be on their way: wait for both
			// directions to settle (no change between two reads), then
			// every packet sent must have been received.
			var last, now [4]uint64
			read := func() [4]uint64 { return [4]uint64{aout.Packets(), bin.Packets(), bout.Packets(), ain.Packets()} }
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); last = now {
				if now = read(); now == last && now[0] == now[1] && now[2] == now[3] {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if a, b := now[0], now[1]; a != b {
				t.Errorf("a sent %d packets, b received %d", a, b)
			}
			if a, b := now[2], now[3]; a != b {
				t.Errorf("b sent %d packets, a received %d", a, b)
			}
			for _, g := range []*Gateway{x.ga, x.gb} {
				for _, c := range []*offload.Counters{&g.tunnels["t1"].d.TX, &g.tunnels["t1"].d.RX} {
					if v := c.Snapshot(); v.Dropped() != 0 {
						t.Errorf("drops: %v", v.DropMap())
					}
				}
			}
		})
	}
}

var _ = bytes.Equal

// TestHostCheck: the tunnel source must be an address of the transport VR;
// Host answers from the namespace itself.
func TestHostCheck(t *testing.T) {
	t.Parallel()
	l := netlab.New(t)
	a, b := l.NS("a"), l.NS("b")
	l.Link(a, "eth0", netip.MustParsePrefix("192.0.2.1/24"), b, "eth0", netip.MustParsePrefix("192.0.2.2/24"))
	text := func(src string) string {
		return fmt.Sprintf(`virtual-router tr netns %s
ipsec transform-set ts
  transform 1 esp-aes128-gcm16
interface tunnel ipsec:t1
  virtual-router tr
  ip address 198.51.100.1 255.255.255.252
  tunnel source %s
  tunnel destination 192.0.2.2
  tunnel transform-set ts
  tunnel sa inbound esp spi 0x1001 cipher-key %s
  tunnel sa outbound esp spi 0x2001 cipher-key %s
`, a, src, strings.Repeat("ab", 20), strings.Repeat("cd", 20))
	}
	for _, c := range []struct {
		src  string
		want string
	}{
		{"192.0.2.1", ""},
		{"192.0.2.9", "test.conf:7: tunnel source: 192.0.2.9 is not an address of virtual-router tr (netns " + a + ")"},
	} {
		cfg, err := config.Parse("test.conf", strings.NewReader(text(c.src)))
		if err != nil {
			t.Fatal(err)
		}
		err = cfg.CheckHost(vr.Host{})
		if got := fmt.Sprint(err); (c.want == "" && err != nil) || (c.want != "" && got != c.want) {
			t.Errorf("source %s: %v, want %q", c.src, err, c.want)
		}
	}
}
