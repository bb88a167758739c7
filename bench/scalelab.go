package bench

import (
	"cmp"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/transform"
)

// scaleLab is the namespaces of a scale or soak run, with the address
// plan of the IKE benchmark: the initiating gateway (a hub, in a) at
// initiatorAddr protecting innerLocal, the responding one with one address
// per tunnel (endpoints), so that each tunnel has its own endpoint pair and
// IKE SA, and tunnel i protecting innerRemote(i). The responding gateway
// has two sockets per address, so it is split over as many processes (each
// with its own limit on open files) and namespaces as it takes perPeer
// tunnels each: tunnel i's is peers[peerOf(i)], joined to a by a veth pair
// of its own. The sampled tunnels' inner hosts are on their
// responder's loopback.
type scaleLab struct {
	l       *netlab.Lab
	a       string
	peers   []string
	plan    int // endpoint pairs in the address plan
	perPeer int // tunnels per responder
}

// DefaultPeerTunnels is the most tunnels one responding process serves
// by default. It dates from a socket pair per local address, when 5,000
// addresses' sockets had to fit 20,000 open files (the hard limit of some
// containers); with wildcard sockets (`dataplane udp-sockets wildcard`,
// the default) one process has held 50,000 tunnels (`-peer-tunnels`).
const DefaultPeerTunnels = 5000

// peerOf is the index of tunnel i's responder.
func (s *scaleLab) peerOf(i int) int { return i % s.plan / s.perPeer }

// peerNS is the namespace of tunnel i's responder.
func (s *scaleLab) peerNS(i int) string { return s.peers[s.peerOf(i)] }

// transit is the veth link between a and responder k, a's end first.
func transit(k int) (netip.Prefix, netip.Prefix) {
	b := transitI.Addr().As16()
	b[6], b[7] = byte(k>>8), byte(k)
	i := netip.PrefixFrom(netip.AddrFrom16(b), transitI.Bits())
	return i, netip.PrefixFrom(i.Addr().Next(), transitI.Bits())
}

// newScaleLab makes the namespaces for plan endpoint pairs, perPeer
// (0: DefaultPeerTunnels) a responder.
func newScaleLab(h *harness, plan, perPeer int, samples []int) *scaleLab {
	l := netlab.New(h)
	s := &scaleLab{l: l, a: l.NS("a"), plan: plan, perPeer: cmp.Or(perPeer, DefaultPeerTunnels)}
	for k := range (plan + s.perPeer - 1) / s.perPeer {
		s.peers = append(s.peers, l.NS(fmt.Sprintf("b%d", k)))
	}
	cmds := map[string]*strings.Builder{s.a: {}}
	for k, ns := range s.peers {
		cmds[ns] = &strings.Builder{}
		ti, tr := transit(k)
		l.Link(s.a, fmt.Sprintf("eth%d", k), ti, ns, "eth0", tr)
		// src: the kernel answers a route lookup (the gateway's path
		// check of each tunnel) with a source address, chosen among all
		// of lo's 1 to 65,535 unless the route names one.
		fmt.Fprintf(cmds[ns], "route add %s via %s src %s\n", initiatorNet, ti.Addr(), tr.Addr())
		// The hub's first packet into each tunnel goes to a host the
		// responder does not have: dropped quietly, not answered with an
		// ICMPv6 error, whose source the kernel picks among all of lo's
		// addresses (at 50,000 tunnels, most of the responder's CPU).
		fmt.Fprintf(cmds[ns], "route add blackhole %s\n", innerRemotes)
	}
	for ns := range cmds {
		l.MustRun(ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	// Responder 0's addresses by the plan's prefix, the others' each.
	fmt.Fprintf(cmds[s.a], "addr add %s/128 dev lo nodad\naddr add %s/128 dev lo nodad\nroute add %s via %s\n",
		initiatorAddr, innerLocalHost, responderNet, transitR.Addr())
	for i := range plan {
		_, b := endpoints(i, plan)
		fmt.Fprintf(cmds[s.peerNS(i)], "addr add %s/128 dev lo nodad\n", b)
		if k := s.peerOf(i); k > 0 {
			_, tr := transit(k)
			fmt.Fprintf(cmds[s.a], "route add %s/128 via %s\n", b, tr.Addr())
		}
	}
	for _, i := range samples {
		fmt.Fprintf(cmds[s.peerNS(i)], "addr add %s/128 dev lo nodad\n", sampleHost(i))
	}
	for ns, b := range cmds {
		cmd := l.Command(ns, "ip", "-batch", "-")
		cmd.Stdin = strings.NewReader(b.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			h.Fatalf("ip -batch in %s: %v\n%s", ns, err, out)
		}
	}
	return s
}

// sampleHost is the address b answers pings on in tunnel i.
func sampleHost(i int) netip.Addr { return innerRemote(i).Addr().Next() }

// scaleConf is what the two gateways' configurations share.
type scaleConf struct {
	ikeVersion int
	ike        IKE
	transform  transform.Transform
	psk        string
	lifetime   time.Duration // of the user SAs; 0: as long as allowed
	retransmit string        // "ipsec ike retransmit" arguments, or none
}

func (c scaleConf) global(ns string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "virtual-router v netns %s\nipsec ike-version %d\n%s", ns, c.ikeVersion, c.ike.policyRule())
	if c.lifetime > 0 {
		fmt.Fprintf(&b, "ipsec lifetime seconds %d\n", int(c.lifetime.Seconds()))
	} else {
		b.WriteString("ipsec lifetime seconds 864000 kilobytes 4294967295\n")
	}
	if c.retransmit != "" {
		fmt.Fprintf(&b, "ipsec ike retransmit %s\n", c.retransmit)
	}
	fmt.Fprintf(&b, "ipsec transform-set ts\n  transform 1 %s\n", c.transform.Name())
	return b.String()
}

func scaleTunnel(b *strings.Builder, i int, src, dst netip.Addr, local, remote netip.Prefix) {
	fmt.Fprintf(b, "interface tunnel ipsec:t%d\n  virtual-router v\n  tunnel source %s\n  tunnel destination %s\n"+
		"  tunnel transform-set ts\n  tunnel local-selector %s\n  tunnel remote-selector %s\n  tunnel udp-encapsulation\n",
		i, src, dst, local, remote)
}

// initiatorConfig is the hub's configuration with tunnels ids (indexes of
// the plan of n endpoint pairs), each routed.
func (c scaleConf) initiatorConfig(ns string, n int, ids []int) string {
	var b strings.Builder
	b.WriteString(c.global(ns))
	seen := make(map[netip.Addr]bool, len(ids))
	for _, i := range ids {
		if _, dst := endpoints(i, n); !seen[dst] {
			seen[dst] = true
			fmt.Fprintf(&b, "ipsec pre-shared-key address %s ascii %s\n", dst, c.psk)
		}
	}
	for _, i := range ids {
		src, dst := endpoints(i, n)
		scaleTunnel(&b, i, src, dst, innerLocal, innerRemote(i))
	}
	for _, i := range ids {
		fmt.Fprintf(&b, "ip route %s ipsec:t%d\n", innerRemote(i), i)
	}
	return b.String()
}

// responderConfigs are the other side's, one per responder of lab: every
// tunnel from its own address to the hub; the sampled tunnels' answers
// are routed by their source.
func (c scaleConf) responderConfigs(lab *scaleLab, ids, samples []int) []string {
	bs := make([]strings.Builder, len(lab.peers))
	for k, ns := range lab.peers {
		bs[k].WriteString(c.global(ns))
		fmt.Fprintf(&bs[k], "ipsec pre-shared-key address %s ascii %s\n", initiatorAddr, c.psk)
	}
	for _, i := range ids {
		hub, src := endpoints(i, lab.plan)
		scaleTunnel(&bs[lab.peerOf(i)], i, src, hub, innerRemote(i), innerLocal)
	}
	for _, i := range samples {
		fmt.Fprintf(&bs[lab.peerOf(i)], "ip policy-route source %s ipsec:t%d\n", innerRemote(i), i)
	}
	out := make([]string, len(bs))
	for k := range bs {
		out[k] = bs[k].String()
	}
	return out
}

// sampleTunnels returns k tunnel indexes spread over n.
func sampleTunnels(n, k int) []int {
	k = min(k, n)
	out := make([]int, 0, k)
	for j := range k {
		out = append(out, j*n/k)
	}
	return out
}

// pingSamples pings each sampled tunnel's far host count times from the
// hub's inner address and returns how many answers came back of how many
// sent.
func (s *scaleLab) pingSamples(samples []int, count int) (sent, received int) {
	for _, i := range samples {
		out, _ := s.l.Run(s.a, "ping", "-6", "-n", "-q", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "2",
			"-I", innerLocalHost.String(), sampleHost(i).String())
		sent += count
		var tx, rx int
		for _, line := range strings.Split(out, "\n") {
			if _, err := fmt.Sscanf(line, "%d packets transmitted, %d received", &tx, &rx); err == nil {
				received += rx
				break
			}
		}
	}
	return sent, received
}
