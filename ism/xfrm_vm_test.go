package ism

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/driver/kernel"
	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/operator"
	"github.com/ismgw/ism/ism/xfrm"
	"github.com/ismgw/ism/transform"
)

// These tests need a kernel with XFRM ESP and AH and XFRM interfaces
// (esp4, ah4, xfrm_interface); they skip with the probe's reason where it
// has none, such as on the CI machine. driver/kernel/testdata/vm/run.sh
// runs them in a guest with Debian's kernel:
//
//	ISM_VM_TCG=1 ISM_VM_PKG=./ism bash driver/kernel/testdata/vm/run.sh -test.run 'TestXFRM'

// needXFRM skips the test unless the kernel's XFRM accepts the transform.
func needXFRM(t *testing.T, tr transform.Transform) {
	t.Helper()
	netlab.New(t) // skips when not root
	r := kernel.Probe()
	st := r.ESP
	if tr.Protocol == transform.AH {
		st = r.AH
	}
	if !st.Present {
		t.Skipf("no XFRM protocol offload here: %s", st.Reason)
	}
}

// xfrmSpec is the lab of gateway A on the XFRM datapath, its secure
// interface in an operational VR (namespace aop) apart from its transport
// VR (a), and gateway B on the software engine in namespace b, as in
// manualSpec: a and b joined by a veth pair (192.0.2.1/24, 192.0.2.2/24),
// 198.51.100.1/30 and 198.51.100.2/30 on the secure interfaces, host
// 203.0.113.1 on b's loopback behind B's tunnel. A logs in JSON.
func xfrmSpec(t *testing.T, trName, extraA string) labSpec {
	tr, ok := transform.Lookup(trName)
	if !ok {
		t.Fatalf("no transform %s", trName)
	}
	needXFRM(t, tr)
	var keys []string
	key := func(spi uint32) string {
		s := fmt.Sprintf("%s spi 0x%x", tr.Protocol, spi)
		if n := tr.CipherKeyLen(); n > 0 {
			k := keyHex(t, n)
			s += " cipher-key " + k
			keys = append(keys, k)
		}
		if n := tr.AuthKeyLen(); n > 0 {
			k := keyHex(t, n)
			s += " auth-key " + k
			keys = append(keys, k)
		}
		return s
	}
	ab, ba := key(0x1001), key(0x2001)
	a1, a2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	return labSpec{ops: []string{"aop"}, aOpts: gwOpts{xfrm: true, json: true},
		prepare: func(x *lab) {
			x.c, x.keys = e2eCase{transform: trName, mode: ipsec.Tunnel}, keys
			x.out = ipsec.SAID{Dst: a2, SPI: 0x1001, Protocol: tr.Protocol}
			x.in = ipsec.SAID{Dst: a1, SPI: 0x2001, Protocol: tr.Protocol}
			x.lab.MustRun(x.b, "ip", "addr", "add", "203.0.113.1/32", "dev", "lo")
		},
		a: func(x *lab) string {
			return ismConf{vrs: [][2]string{{"tr", x.a}, {"op", x.aop}}, transforms: []string{trName},
				tunnels: []ismTunnel{{vr: "op", transportVR: "tr", address: "198.51.100.1 255.255.255.252", source: "192.0.2.1", dest: "192.0.2.2",
					in: ba, out: ab, extra: "  tunnel driver kernel\n" + extraA, routes: []string{"203.0.113.0 255.255.255.0"}}}}.String()
		},
		b: func(x *lab) string { return x.config(t, "b", ab, ba, "  tunnel driver software\n") },
	}
}

// pings pings n times from A's side to the host behind B and from B's
// secure interface to A's.
func (x *lab) pings(t *testing.T, n int) {
	t.Helper()
	for _, p := range [][3]string{{x.aop, "198.51.100.1", "203.0.113.1"}, {x.b, "198.51.100.2", "198.51.100.1"}} {
		if out, err := x.lab.Run(p[0], "ping", "-c", fmt.Sprint(n), "-i", "0.1", "-W", "10", "-I", p[1], p[2]); err != nil {
			r, _ := x.lab.Run(x.aop, "ip", "route")
			a, _ := x.lab.Run(x.aop, "ip", "addr")
			s, _, _ := x.ga.Exec("show ipsec tunnel detail")
			t.Fatalf("ping %s → %s: %v\n%s\nA: ip route:\n%s\nA: ip addr:\n%s\n%s\nA log:\n%s", p[1], p[2], err, out, r, a, s, x.log.String())
		}
	}
}

// kernelUsage queries one of A's SAs in its transport namespace's kernel,
// apart from the gateway.
func (x *lab) kernelUsage(t *testing.T, id ipsec.SAID) kernel.SAUsage {
	t.Helper()
	c, err := kernel.OpenXFRM(x.a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, err := c.QuerySA(id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestXFRMDatapath: a manual tunnel between A on XFRM protocol offload and
// B on the software engine carries pings both ways, for an AEAD, a CBC+HMAC
// and an AH transform. The kernel's SA counters (queried apart from the
// gateway) grew by what B counted, show says xfrm with the reason, the
// XFRM interface is in the operational VR, and Close leaves no SA, policy
// or interface behind.
func TestXFRMDatapath(t *testing.T) {
	for _, tr := range []string{"esp-aes128-gcm16", "esp-aes128-hmac-sha", "ah-hmac-sha"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			x := newLab(t, xfrmSpec(t, tr, ""))
			x.pings(t, 5)
			text, st := tunnelDetail(t, x.ga)
			t.Logf("A: %s", text)
			if st.State != "up" || st.Datapath != "xfrm" || st.Driver != xfrm.DriverText || !strings.HasPrefix(st.Interface, "ismx") ||
				!strings.Contains(text, "Driver kernel (xfrm protocol offload) (driver kernel: kernel XFRM accepts "+tr+")") {
				t.Errorf("A is not on the XFRM datapath:\n%s", text)
			}
			out, in := x.kernelUsage(t, x.out), x.kernelUsage(t, x.in)
			_, bst := tunnelDetail(t, x.gb)
			// Each ping is a request and a reply: 10 packets each way.
			if out.Packets < 10 || in.Packets < 10 || out.Bytes == 0 || in.Bytes == 0 {
				t.Errorf("kernel SAs: out %+v, in %+v; want 10 packets or more each", out, in)
			}
			if out.Packets != bst.Inbound.Packets || in.Packets != bst.Outbound.Packets {
				t.Errorf("A's kernel sent %d and received %d; B received %d and sent %d",
					out.Packets, in.Packets, bst.Inbound.Packets, bst.Outbound.Packets)
			}
			if st.Outbound.Packets != out.Packets || st.Inbound.Packets != in.Packets {
				t.Errorf("show on A: %d out, %d in; the kernel: %d, %d", st.Outbound.Packets, st.Inbound.Packets, out.Packets, in.Packets)
			}
			sas, _, err := x.ga.Exec("show ipsec sa")
			if err != nil || strings.Count(sas, "driver "+xfrm.DriverText) != 2 {
				t.Errorf("show ipsec sa: want two XFRM SAs:\n%s", sas)
			}
			if link := x.lab.MustRun(x.aop, "ip", "-d", "link", "show"); !strings.Contains(link, "xfrm if_id") {
				t.Errorf("no XFRM interface in the operational VR:\n%s", link)
			}
			x.ga.Close()
			x.noXFRMLeft(t, "after Close")
			for _, k := range x.keys {
				for _, where := range []string{x.log.String(), text, sas, fmt.Sprintf("%+v", st)} {
					if strings.Contains(strings.ToLower(where), k) {
						t.Errorf("a key is in the log or show output:\n%s", where)
					}
				}
			}
			if !strings.Contains(x.log.String(), `"driver":"`+xfrm.DriverText+`"`) {
				t.Errorf("the log does not say %q:\n%s", xfrm.DriverText, x.log.String())
			}
		})
	}
}

// TestXFRMFault: when the XFRM interface cannot be made (a link of its
// name is in the way), the tunnel runs on the lookaside datapath, carries
// traffic, and the fault is counted and shown. Not parallel: it predicts
// the next interface name.
func TestXFRMFault(t *testing.T) {
	gcm, _ := transform.Lookup("esp-aes128-gcm16")
	needXFRM(t, gcm)
	s := manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel, xfrm: true,
		extraA: "  tunnel driver kernel\n", extraB: "  tunnel driver software\n"})
	var name string
	prepare := s.prepare
	s.prepare = func(x *lab) {
		prepare(x)
		name = xfrm.NextLinkName()
		x.lab.MustRun(x.a, "ip", "link", "add", name, "type", "veth", "peer", "name", "blocker")
	}
	x := newLab(t, s)
	if err := x.ping(t, 3); err != nil {
		t.Fatal(err)
	}
	text, st := tunnelDetail(t, x.ga)
	t.Logf("A: %s", text)
	if st.State != "up" || st.Datapath != "lookaside" || !strings.Contains(text, "Datapath lookaside: fallback: xfrm protocol offload faulted: xfrm: create XFRM interface "+name) {
		t.Errorf("want the tunnel up on the lookaside datapath with the fault:\n%s", text)
	}
	if fb := x.ga.Statistics().Fallbacks; fb["xfrm-fault"] != 1 {
		t.Errorf("fallbacks %v: want xfrm-fault 1", fb)
	}
	for _, c := range [][]string{{"ip", "xfrm", "state"}, {"ip", "xfrm", "policy"}} {
		if out := x.lab.MustRun(x.a, c...); strings.TrimSpace(out) != "" {
			t.Errorf("the fault left XFRM state behind: %s:\n%s", strings.Join(c, " "), out)
		}
	}
}

// signaledXFRM brings up a signaled esp-aes128-gcm16 tunnel (IKEv1, two
// in-process gateways, extra added to both tunnels) between namespaces a,
// on the XFRM datapath, and b, on the software engine. The first packet
// starts IKE and is lost: it pings until the tunnel carries traffic.
func signaledXFRM(t *testing.T, extra string) (l *netlab.Lab, a, b string, ga, gb *Gateway) {
	t.Helper()
	gcm, _ := transform.Lookup("esp-aes128-gcm16")
	needXFRM(t, gcm)
	s := pairSpec("", "  tunnel driver kernel\n"+extra, "  tunnel driver software\n"+extra)
	s.aOpts.xfrm = true
	x := newLab(t, s)
	l, a, b, ga, gb = x.lab, x.a, x.b, x.ga, x.gb
	var out string
	var err error
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); {
		if out, err = l.Run(a, "ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", "198.51.100.1", "203.0.113.1"); err == nil {
			return l, a, b, ga, gb
		}
	}
	t.Fatalf("ping through the tunnel: %v\n%s", err, out)
	return
}

// TestXFRMSignaled: a signaled tunnel (IKEv1, two in-process gateways)
// with A on the XFRM datapath and B on the software engine: A's first
// packet makes the kernel ask for SAs (XFRM acquire), IKE installs them in
// A's kernel, and pings go both ways through them.
func TestXFRMSignaled(t *testing.T) {
	l, _, b, ga, gb := signaledXFRM(t, "")
	if out, err := l.Run(b, "ping", "-c", "3", "-i", "0.2", "-W", "10", "-I", "203.0.113.1", "198.51.100.1"); err != nil {
		t.Fatalf("ping from b: %v\n%s", err, out)
	}
	text, st := tunnelDetail(t, ga)
	t.Logf("A: %s", text)
	if st.State != "up" || st.Datapath != "xfrm" || len(st.SAs) != 2 || st.Outbound.Packets < 3 || st.Inbound.Packets < 3 {
		t.Errorf("want A up on the XFRM datapath with two SAs that carried the pings:\n%s", text)
	}
	for _, sa := range st.SAs {
		if sa.Driver != xfrm.DriverText || !strings.HasSuffix(sa.Lifetime, "(kernel limits)") {
			t.Errorf("SA %s: driver %q, lifetime %q", sa.SPI, sa.Driver, sa.Lifetime)
		}
	}
	if _, bst := tunnelDetail(t, gb); bst.State != "up" {
		t.Errorf("B is %s", bst.State)
	}
}

// noXFRMLeft checks that A's namespaces hold no XFRM SA, policy or
// interface.
func (x *lab) noXFRMLeft(t *testing.T, when string) {
	t.Helper()
	for _, c := range [][]string{{"ip", "xfrm", "state"}, {"ip", "xfrm", "policy"}} {
		if out := x.lab.MustRun(x.a, c...); strings.TrimSpace(out) != "" {
			t.Errorf("%s, %s:\n%s", when, strings.Join(c, " "), out)
		}
	}
	if link := x.lab.MustRun(x.aop, "ip", "link", "show"); strings.Contains(link, "ismx") {
		t.Errorf("%s, the XFRM interface is left:\n%s", when, link)
	}
}

// TestXFRMReload: a reload that moves the tunnel to driver software takes
// its XFRM SAs, policies and interface away, and the tunnel carries
// traffic on the lookaside datapath; a reload back puts it on XFRM again.
// B restarts with each reload: A's rebuilt manual SAs start their sequence
// numbers again, which B's replay window would refuse.
func TestXFRMReload(t *testing.T) {
	x := newLab(t, xfrmSpec(t, "esp-aes128-gcm16", ""))
	x.pings(t, 2)
	reload := func(text string) {
		t.Helper()
		reloadText(t, x.ga, text)
		x.gb.Close()
		x.gb, _ = startGateway(t, x.textB, gwOpts{})
	}
	reload(strings.Replace(x.textA, "tunnel driver kernel", "tunnel driver software", 1))
	x.noXFRMLeft(t, "after a reload to driver software")
	x.pings(t, 2)
	if text, st := tunnelDetail(t, x.ga); st.Datapath != "lookaside" || st.Driver != "software" || st.Outbound.Packets < 4 {
		t.Errorf("after a reload to driver software:\n%s", text)
	}
	reload(x.textA)
	x.pings(t, 2)
	if text, st := tunnelDetail(t, x.ga); st.Datapath != "xfrm" || st.Outbound.Packets < 4 {
		t.Errorf("after a reload back to driver kernel:\n%s", text)
	}
	// A policy route, which XFRM cannot carry, moves the unchanged tunnel
	// to the lookaside datapath.
	reload(x.textA + "ip policy-route source 198.51.100.1/32 ipsec:t1\n")
	x.noXFRMLeft(t, "after a reload adding a policy route")
	x.pings(t, 2)
	if text, st := tunnelDetail(t, x.ga); st.Datapath != "lookaside" || st.Outbound.Packets < 2 {
		t.Errorf("after a reload adding a policy route:\n%s", text)
	}
}

// TestXFRMRekeyVolume: a signaled tunnel with a 4096 KB lifetime on the
// XFRM datapath: the kernel's soft byte limit fires an expire notification,
// IKE rekeys, and the new SAs go into the kernel, while a 3 MiB transfer
// runs through intact.
func TestXFRMRekeyVolume(t *testing.T) {
	_, a, b, ga, _ := signaledXFRM(t, "  tunnel lifetime kilobytes 4096\n")
	_, before := tunnelDetail(t, ga)
	transferBetween(t, a, "198.51.100.1", b, "203.0.113.1", 3<<20)
	var st operator.TunnelStatus
	var text string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if text, st = tunnelDetail(t, ga); st.IKE != nil && st.IKE.Rekeys > 0 && st.State == "up" {
			break
		}
	}
	t.Logf("A: %s", text)
	if ga.seam.expires[0].Load() == 0 {
		t.Error("no soft expire notification from the kernel")
	}
	if st.IKE == nil || st.IKE.Rekeys == 0 || st.Datapath != "xfrm" {
		t.Fatalf("no rekey on the XFRM datapath:\n%s", text)
	}
	spis := map[string]bool{}
	for _, sa := range before.SAs {
		spis[sa.SPI] = true
	}
	fresh := 0
	for _, sa := range st.SAs {
		if !spis[sa.SPI] && sa.Driver == xfrm.DriverText {
			fresh++
		}
	}
	if fresh < 2 {
		t.Errorf("no new pair of kernel SAs after the rekey:\n%s", text)
	}
}
