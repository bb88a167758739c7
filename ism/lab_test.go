package ism

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/netns"
)

// The tests' one way to configure an ISM (ismConf), to start one
// (startGateway) and to build a lab around it (newLab): gateway A in
// namespace a at 192.0.2.1, its peer in namespace b at 192.0.2.2, joined by
// a veth pair; the peer is another ISM or strongSwan's charon
// (internal/swantest).

// TestMain runs the tests sixteen at once unless -test.parallel says
// otherwise: the labs wait on their peers, pings and timers in namespaces
// of their own, not on the CPU (on two CPUs, sixteen use about one and a
// half of them).
func TestMain(m *testing.M) { swantest.MainParallel(m, 16) }

// testTimers are the gateway's own timers in the tests: paths are checked
// again every half second instead of every five.
var testTimers = Timers{PathCheck: 500 * time.Millisecond}

// ismConf is an ISM configuration: the one builder the tests render their
// gateways' configurations with.
type ismConf struct {
	vrs        [][2]string // virtual routers: name, netns
	global     string      // global lines: policy rules, keys, timers, SNMP, certificates
	transforms []string    // transform set ts
	tunnels    []ismTunnel
	routes     string // more route lines
}

// ismTunnel is one secure interface and its tunnel.
type ismTunnel struct {
	name        string // default t1
	vr          string // default the first VR
	transportVR string
	transport   bool   // transport mode
	address     string // the interface's address
	source      string // default 192.0.2.1
	dest        string // default 192.0.2.2
	backup      string
	// local and remote are the selectors; remote is routed to the
	// tunnel, as are routes.
	local, remote string
	routes        []string
	udp           bool
	in, out       string // manual SAs
	extra         string // more lines in the interface block
}

func (c ismConf) String() string {
	var b strings.Builder
	for _, v := range c.vrs {
		fmt.Fprintf(&b, "virtual-router %s netns %s\n", v[0], v[1])
	}
	b.WriteString(c.global)
	b.WriteString("ipsec transform-set ts\n")
	for i, tr := range c.transforms {
		fmt.Fprintf(&b, "  transform %d %s\n", i+1, tr)
	}
	for _, tu := range c.tunnels {
		tu.defaults(c)
		fmt.Fprintf(&b, "interface tunnel ipsec:%s\n  virtual-router %s\n", tu.name, tu.vr)
		if tu.transportVR != "" {
			fmt.Fprintf(&b, "  transport-virtual-router %s\n", tu.transportVR)
		}
		if tu.transport {
			b.WriteString("  tunnel mode transport\n")
		}
		if tu.address != "" {
			fmt.Fprintf(&b, "  ip address %s\n", tu.address)
		}
		fmt.Fprintf(&b, "  tunnel source %s\n  tunnel destination %s\n", tu.source, tu.dest)
		if tu.backup != "" {
			fmt.Fprintf(&b, "  tunnel destination backup %s\n", tu.backup)
		}
		b.WriteString("  tunnel transform-set ts\n")
		if tu.local != "" {
			fmt.Fprintf(&b, "  tunnel local-selector %s\n", tu.local)
		}
		if tu.remote != "" {
			fmt.Fprintf(&b, "  tunnel remote-selector %s\n", tu.remote)
		}
		if tu.udp {
			b.WriteString("  tunnel udp-encapsulation\n")
		}
		if tu.in != "" {
			fmt.Fprintf(&b, "  tunnel sa inbound %s\n  tunnel sa outbound %s\n", tu.in, tu.out)
		}
		b.WriteString(tu.extra)
		for _, r := range tu.routes {
			fmt.Fprintf(&b, "ip route %s ipsec:%s\n", r, tu.name)
		}
	}
	b.WriteString(c.routes)
	return b.String()
}

func (tu *ismTunnel) defaults(c ismConf) {
	if tu.name == "" {
		tu.name = "t1"
	}
	if tu.vr == "" && len(c.vrs) > 0 {
		tu.vr = c.vrs[0][0]
	}
	if tu.source == "" {
		tu.source = swantest.ISMAddr.String()
	}
	if tu.dest == "" {
		tu.dest = swantest.SwanAddr.String()
	}
	if tu.remote != "" && !tu.transport {
		tu.routes = append([]string{tu.remote}, tu.routes...)
	}
}

// pskRule is one policy rule with pre-shared keys: the key for each
// address or, if id is set, for that identity instead.
func pskRule(enc, hash string, group int, id string, addrs ...netip.Addr) string {
	s := fmt.Sprintf("ipsec isakmp-policy-rule 1\n  encryption %s\n  hash %s\n  group %d\n  authentication pre-shared-key\n", enc, hash, group)
	if id != "" {
		return s + fmt.Sprintf("ipsec pre-shared-key identity %s ascii %s\n", id, swanPSK)
	}
	if len(addrs) == 0 {
		addrs = []netip.Addr{swantest.SwanAddr}
	}
	for _, a := range addrs {
		s += fmt.Sprintf("ipsec pre-shared-key address %s ascii %s\n", a, swanPSK)
	}
	return s
}

// gwOpts are a test gateway's options beyond its configuration.
type gwOpts struct {
	// ns is the namespace the gateway starts in: the daemon's own, where
	// its trap sockets live ("" the test's).
	ns string
	// xfrm lets it choose XFRM protocol offload where the kernel has it;
	// the others stay on ISM's own datapath, so that they pass and
	// measure the same on a host whose kernel has ESP.
	xfrm bool
	json bool // log in JSON
	// ike, if set, makes the gateway's IKE daemon (Options.IKE).
	ike func(ike.Config, ike.Installer, ike.Transport, ike.Listener) (ike.Daemon, error)
}

// startGateway starts a gateway from configuration text, with the test
// timers; its log is kept, and shown if the test fails; it is closed when
// the test ends.
func startGateway(t *testing.T, text string, o gwOpts) (*Gateway, *syncBuffer) {
	t.Helper()
	cfg, err := config.Parse("test.conf", strings.NewReader(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	log := &syncBuffer{}
	h := slog.Handler(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.json {
		h = slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	opts := Options{Logger: slog.New(h), NoXFRM: !o.xfrm, Timers: testTimers, IKE: o.ike}
	var g *Gateway
	start := func() (err error) { g, err = New(cfg, opts); return err }
	if o.ns != "" {
		err = netns.Do(o.ns, start)
	} else {
		err = start()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var state string
		if t.Failed() {
			// What the gateway counted says where packets went.
			for _, cmd := range []string{"show ipsec tunnel detail", "show ipsec statistics"} {
				out, _, err := g.Exec(cmd)
				state += fmt.Sprintf("%s:\n%s%v\n", cmd, out, err)
			}
		}
		g.Close()
		if t.Failed() {
			t.Logf("ISM's log:\n%s\n%s", log.String(), state)
		}
	})
	return g, log
}

// labSpec describes a lab.
type labSpec struct {
	// charon, when set, is the peer: charon in b with this configuration,
	// its routes through its userspace ESP installed; A starts in a,
	// which is its VR v. Otherwise the peer is gateway B.
	charon *swantest.Conf
	// peerAddr is one more address of the peer on its veth, peerAddrs
	// more still; hostAddrs more addresses of the inner hosts, each on
	// its side's loopback (198.51.100.0/24 in a, 203.0.113.0/24 in b),
	// before the peer starts.
	peerAddr             string
	peerAddrs, hostAddrs []string
	// hostLink puts host addresses (/32) on the veth: no routes between
	// the two.
	hostLink bool
	// backup is a second charon at 192.0.2.3.
	backup *swantest.Conf
	traps  bool // snmptrapd, joined to a
	// inA starts A inside namespace a, which is then the daemon's own:
	// its trap sockets are there.
	inA bool
	// hosts puts the inner hosts on the loopbacks: 198.51.100.1 in a,
	// 203.0.113.1 in b (always with charon).
	hosts bool
	// ops are operational VRs apart from a and b: "aop", "bop".
	ops []string
	// prepare runs once the namespaces are up, before the gateways start.
	prepare func(x *lab)
	// a and b are the gateways' configurations, rendered once the
	// namespaces are known; b is unused with charon.
	a, b         func(x *lab) string
	aOpts, bOpts gwOpts
}

// lab is a running lab.
type lab struct {
	lab         *netlab.Lab
	env         *swantest.Env // with charon: a is its NSISM, b its NSSwan
	backup      *swantest.Env
	primaryConf swantest.Conf
	backupConf  swantest.Conf
	traps       *trapRx
	a, b        string
	aop, bop    string // operational VRs apart (transport mode, XFRM)
	// ga is A; g is A too, by the name the tests against charon use.
	ga, gb, g *Gateway
	log       *syncBuffer // A's log

	// manual tunnels (e2eCase): the case and each side's key line.
	c      e2eCase
	ka, kb string
	// XFRM labs: A's and B's configurations, the SAs' keys in hex, A's
	// kernel SAs.
	textA, textB string
	keys         []string
	in, out      ipsec.SAID
}

// newLab builds a lab: the one way the tests get namespaces, peers and
// gateways.
func newLab(t *testing.T, s labSpec) *lab {
	t.Helper()
	x := &lab{}
	if s.charon != nil {
		x.env = swantest.New(t)
		x.a, x.b = x.env.NSISM, x.env.NSSwan
		x.lab = netlab.New(t)
		t.Cleanup(func() {
			if t.Failed() {
				x.env.Dump()
			}
		})
	} else {
		x.lab = netlab.New(t)
		x.a, x.b = x.lab.NS("a"), x.lab.NS("b")
		bits := 24
		if s.hostLink {
			bits = 32
		}
		x.lab.Link(x.a, "eth0", netip.PrefixFrom(swantest.ISMAddr, bits), x.b, "eth0", netip.PrefixFrom(swantest.SwanAddr, bits))
		if s.hosts {
			x.lab.MustRun(x.a, "ip", "addr", "add", "198.51.100.1/32", "dev", "lo")
			x.lab.MustRun(x.b, "ip", "addr", "add", "203.0.113.1/32", "dev", "lo")
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			x.dumpKernel(t)
		}
	})
	for _, o := range s.ops {
		switch o {
		case "aop":
			x.aop = x.lab.NS(o)
		case "bop":
			x.bop = x.lab.NS(o)
		}
	}
	for _, a := range append([]string{s.peerAddr}, s.peerAddrs...) {
		if a != "" {
			x.lab.MustRun(x.b, "ip", "addr", "add", a+"/24", "dev", vethOf(t, x.b))
		}
	}
	for _, a := range s.hostAddrs {
		ns := x.a
		if strings.HasPrefix(a, "203.0.113.") {
			ns = x.b
		}
		x.lab.MustRun(ns, "ip", "addr", "add", a+"/32", "dev", "lo")
	}
	if s.charon != nil {
		x.primaryConf = *s.charon
		x.primaryConf.InstallRoutes = true
		x.env.StartCharon(x.primaryConf)
	}
	if s.backup != nil {
		x.backup = x.env.AddPeer(t, swanBackupAddr)
		x.backupConf = *s.backup
		x.backupConf.InstallRoutes = true
		x.backup.StartCharon(x.backupConf)
		t.Cleanup(func() {
			if t.Failed() {
				x.backup.Dump()
			}
		})
	}
	if s.traps {
		x.traps = startTrapRx(t, x.a)
	}
	if s.prepare != nil {
		s.prepare(x)
	}
	if s.inA {
		s.aOpts.ns = x.a
	}
	if s.a != nil {
		x.textA = s.a(x)
		x.ga, x.log = startGateway(t, x.textA, s.aOpts)
		x.g = x.ga
	}
	if s.b != nil && s.charon == nil {
		x.textB = s.b(x)
		x.gb, _ = startGateway(t, x.textB, s.bOpts)
	}
	return x
}

// syncBuffer is a bytes.Buffer safe for concurrent writers: a gateway's
// log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// dumpKernel logs what the kernel of each of the lab's namespaces counted
// against packets (UDP without a socket or with a full buffer, IP discards),
// for a failed test: a packet lost outside the gateways shows there.
func (x *lab) dumpKernel(t *testing.T) {
	for _, ns := range []string{x.a, x.b, x.aop, x.bop} {
		if ns == "" {
			continue
		}
		out, err := x.lab.Run(ns, "nstat", "-asz", "UdpInDatagrams", "UdpNoPorts", "UdpInErrors", "UdpRcvbufErrors",
			"IpInDiscards", "IpInAddrErrors", "IpOutNoRoutes", "IpExtInNoRoutes", "IcmpInDestUnreachs", "IcmpOutDestUnreachs",
			"IpInHdrErrors", "IpExtInCsumErrors", "TcpInCsumErrors", "TcpInErrs", "TcpRetransSegs", "TcpExtTCPTimeouts",
			"TcpExtTCPRcvQDrop", "TcpExtTCPOFOQueue", "TcpExtTCPOFODrop", "TcpExtTCPZeroWindowDrop", "TcpExtTCPBacklogDrop")
		t.Logf("kernel counters in %s (%v):\n%s", ns, err, out)
	}
}
