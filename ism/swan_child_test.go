package ism

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// Charon's hosts besides swanHost, and the children of its connection,
// by name: "net" has the tunnel's selectors, "narrow" is inside it (on
// both sides, so that charon routes it apart), "high" beside "narrow" (the
// other half of the tunnel), "short" has a lifetime below ISM's least
// (IKEv1, where the lifetime is negotiated).
const (
	swanHostHigh = "203.0.113.129" // in "net" and "high", not in "narrow"; on charon's loopback (charon.New)
	swanHostFar  = "203.0.113.200" // the same
	childNarrow  = "203.0.113.0/25"
	childHigh    = "203.0.113.128/25"
)

var swanChildTS = map[string][2]string{
	"net":    {"203.0.113.0/24", "198.51.100.0/24"},
	"narrow": {childNarrow, "198.51.100.0/25"},
	"high":   {childHigh, "198.51.100.0/24"},
	"short":  {"203.0.113.64/26", "198.51.100.0/24"},
}

// swanChildPeer is charon's connection with the children named, the first
// as its first child.
func swanChildPeer(version int, children ...string) swanPeer {
	p := swanPeer{Version: version, Proposals: "aes128-sha1-modp2048", ESP: "aes128-sha1",
		Child: children[0], LocalTS: swanChildTS[children[0]][0], RemoteTS: swanChildTS[children[0]][1]}
	for _, c := range children[1:] {
		ch := charon.Child{Name: c, LocalTS: []string{swanChildTS[c][0]}, RemoteTS: []string{swanChildTS[c][1]}, ESPProposals: []string{p.ESP}}
		if c == "short" {
			ch.Timers = charon.Timers{Life: 22 * time.Second, Rekey: 20 * time.Second, Rand: charon.Never}
		}
		p.Children = append(p.Children, ch)
	}
	return p
}

// TestSwanChildSAs: several child SAs on one tunnel against charon, IKEv1
// and IKEv2, ISM as initiator and as responder of the first (issue 15):
//
//   - charon adds a narrower child (203.0.113.0/25) to the tunnel's
//     (203.0.113.0/24): traffic to each goes on its own SA, the counters
//     of each SA say so;
//   - charon rekeys the narrow child, ISM the tunnel's: each time that
//     pair alone is replaced;
//   - charon deletes the tunnel's child (a peer-side phase 2 delete):
//     tunnel detail and `show ike sa` agree before and after, the IKE SA
//     established, the narrow child alone up;
//   - sustained traffic to the half no SA covers makes ISM negotiate a
//     child for it, which charon refuses (it has no such child): the
//     negotiation backs off (1 s doubling up to 4 s), is counted in show,
//     logged and trapped once; once charon has the child, the next attempt
//     brings up a second child disjoint from the first, the held packets
//     and the traffic leave on it;
//   - IKEv1: a quick mode charon starts with a 22 s lifetime is refused,
//     the least ISM accepts being 30 s.
func TestSwanChildSAs(t *testing.T) {
	t.Parallel()
	for _, v := range []int{1, 2} {
		for _, role := range swanRoles {
			t.Run(fmt.Sprintf("v%d/%s", v, role), func(t *testing.T) {
				t.Parallel()
				swanChildSAs(t, v, role)
			})
		}
	}
}

func swanChildSAs(t *testing.T, version int, role string) {
	global := pskRule("aes128", "sha", 14, "") + "ipsec negotiation back-off initial 1 maximum 4\n" + trapHostLine()
	if version == 2 {
		global = "ipsec ike-version 2\n" + global
	}
	side := ismConf{global: global, transforms: []string{"esp-aes128-hmac-sha"}, tunnels: []ismTunnel{{}}}
	var short []string
	if version == 1 {
		short = []string{"short"}
	}
	children := func(names ...string) swanPeer { return swanChildPeer(version, append(names, short...)...) }
	// An IKEv1 charon keeps a rekeyed child until it expires, unless told.
	spec := swanSpec(side, children("net"), swantest.Conf{Charon: "delete_rekeyed = yes\n"})
	spec.hostAddrs = []string{swanHostFar} // swanHostHigh is there already
	spec.traps, spec.inA = true, true
	x := newLab(t, spec)
	x.bringUp(t, role)
	x.wantChildren(t, "the tunnel's child", "203.0.113.0/24")

	// A narrower child beside the tunnel's: each carries its own traffic.
	x.reloadCharon(t, children("net", "narrow"))
	if out, err := x.env.Initiate("narrow", 20*time.Second); err != nil {
		t.Fatalf("charon initiate narrow: %v\n%s", err, out)
	}
	x.waitFor(t, 10*time.Second, "the narrow child", func() bool { return x.childCount(t) == 2 })
	before := x.children(t)
	x.pingUntil(t, x.env.NSISM, ismHost, swanHost, 5)
	x.pingUntil(t, x.env.NSISM, ismHost, swanHostHigh, 5)
	after := x.children(t)
	for remote, want := range map[string]string{childNarrow: swanHost, "203.0.113.0/24": swanHostHigh} {
		if d := after[remote].out - before[remote].out; d < 5 {
			t.Errorf("child to %s carried %d of the pings to %s, want 5 or more", remote, d, want)
		}
		if d := after[remote].in - before[remote].in; d < 5 {
			t.Errorf("child to %s brought %d of the replies from %s, want 5 or more", remote, d, want)
		}
	}
	p1 := "IKE SA (phase 1) with "
	p2 := "Child SAs (phase 2): "
	if version == 2 {
		p1, p2 = "IKE SA with ", "Child SAs: "
	}
	x.wantIKEStory(t, p1, p2+"up, 2 child SA pairs")

	// Charon rekeys the narrow child: that pair alone is replaced, with its
	// selectors; the tunnel's child keeps its SAs.
	old := x.children(t)
	if out, err := x.env.Swanctl("--rekey", "--child", "narrow"); err != nil {
		t.Fatalf("charon rekey narrow: %v\n%s", err, out)
	}
	x.waitFor(t, 15*time.Second, "the rekey of the narrow child", func() bool {
		n, ok := x.children(t)[childNarrow]
		return x.childCount(t) == 2 && ok && n.spiOut != old[childNarrow].spiOut
	})
	if c := x.children(t); c["203.0.113.0/24"].spiOut != old["203.0.113.0/24"].spiOut || c["203.0.113.0/24"].spiIn != old["203.0.113.0/24"].spiIn {
		t.Errorf("the rekey of the narrow child replaced the tunnel's child: %+v, then %+v", old, c)
	}
	// ISM rekeys the tunnel's child (its outbound SA's soft lifetime):
	// that pair alone is replaced, for the tunnel's selectors.
	old = x.children(t)
	x.g.daemon().Expire(ipsec.SAID{Dst: swantest.SwanAddr, SPI: old["203.0.113.0/24"].spiOut, Protocol: transform.ESP}, false)
	x.waitFor(t, 15*time.Second, "ISM's rekey of the tunnel's child", func() bool {
		n, ok := x.children(t)["203.0.113.0/24"]
		return x.childCount(t) == 2 && ok && n.spiOut != old["203.0.113.0/24"].spiOut
	})
	if c := x.children(t); c[childNarrow].spiOut != old[childNarrow].spiOut || c[childNarrow].spiIn != old[childNarrow].spiIn {
		t.Errorf("the rekey of the tunnel's child replaced the narrow child: %+v, then %+v", old, c)
	}
	x.pingUntil(t, x.env.NSISM, ismHost, swanHost, 3)
	x.pingUntil(t, x.env.NSISM, ismHost, swanHostHigh, 3)

	// The peer deletes the tunnel's child (phase 2): the IKE SA stays, the
	// narrow child carries on.
	if out, err := x.env.Swanctl("--terminate", "--child", "net"); err != nil {
		t.Fatalf("charon terminate net: %v\n%s", err, out)
	}
	x.waitFor(t, 10*time.Second, "the delete of the tunnel's child", func() bool { return x.childCount(t) == 1 })
	x.wantChildren(t, "the narrow child", childNarrow)
	x.wantIKEStory(t, p1, p2+"up, 1 child SA pair")
	x.pingUntil(t, x.env.NSISM, ismHost, swanHost, 3)

	// Sustained traffic to the other half, which charon now refuses: the
	// negotiation backs off, reported once.
	x.reloadCharon(t, children("narrow"))
	logMark, trapMark := len(x.log.String()), len(x.traps.traps(t))
	p := x.startPing(t, ismHost, swanHostFar)
	pair := "198.51.100.0/24 to " + childHigh
	var neg ike.NegotiationStatus
	x.waitFor(t, 20*time.Second, "three refusals of "+pair, func() bool {
		neg = x.negotiation(t, childHigh)
		return neg.Failures >= 3
	})
	t.Logf("%s: %s, %d attempts, %d failures, last error %s", pair, neg.State, neg.Attempts, neg.Failures, neg.LastError)
	if neg.Attempts > neg.Failures+1 || neg.Failures > 4 {
		t.Errorf("%s: %d attempts, %d failures after three refusals: want 1 s, 2 s, 4 s apart (no retry on every packet)", pair, neg.Attempts, neg.Failures)
	}
	if !strings.HasPrefix(neg.State, "backing off") && !strings.HasPrefix(neg.State, "negotiating") {
		t.Errorf("%s: state %q, want backing off", pair, neg.State)
	}
	x.wantShow(t, "show ipsec tunnel detail", "Negotiation (new child SA) "+pair, fmt.Sprintf("%d failures", neg.Failures))
	if n := strings.Count(x.log.String()[logMark:], `msg="IKE: negotiation failed"`); n != 1 {
		t.Errorf("%d negotiation failures logged as warnings for %d refusals, want 1 (once per state change)", n, neg.Failures)
	}
	ikeFailures := func() int {
		n := 0
		for _, tr := range x.traps.traps(t)[trapMark:] {
			if tr.oid == oidTrapIKEFailure {
				n++
			}
		}
		return n
	}
	x.traps.wait(t, "ismIkeFailure", trapMark, 10*time.Second, func(tr rxTrap) bool { return tr.oid == oidTrapIKEFailure })
	if n := ikeFailures(); n != 1 {
		t.Errorf("%d ismIkeFailure traps for %d refusals, want 1:\n%s", n, neg.Failures, x.traps.text())
	}

	// Charon gets the child: the next attempt brings it up beside the
	// narrow one, and the ping gets through on it.
	x.reloadCharon(t, children("narrow", "high"))
	x.waitFor(t, 20*time.Second, "the disjoint child", func() bool { return x.childCount(t) == 2 })
	x.wantChildren(t, "the two halves", childHigh, childNarrow)
	before = x.children(t)
	x.pingUntil(t, x.env.NSISM, ismHost, swanHostFar, 3)
	x.pingUntil(t, x.env.NSISM, ismHost, swanHost, 3)
	after = x.children(t)
	for _, remote := range []string{childNarrow, childHigh} {
		if d := after[remote].out - before[remote].out; d < 3 {
			t.Errorf("child to %s carried %d packets of its pings, want 3 or more", remote, d)
		}
	}
	sent, received := p.stop(t)
	t.Logf("the sustained ping to %s: %d sent, %d answered", swanHostFar, sent, received)
	if received == 0 {
		t.Errorf("the sustained ping to %s: %d sent, none answered once the child came", swanHostFar, sent)
	}

	// The peer deletes both children: no child SA left, the IKE SA up,
	// and both shows say so.
	for _, c := range []string{"narrow", "high"} {
		if out, err := x.env.Swanctl("--terminate", "--child", c); err != nil {
			t.Fatalf("charon terminate %s: %v\n%s", c, err, out)
		}
	}
	x.waitFor(t, 10*time.Second, "the delete of both children", func() bool { return x.childCount(t) == 0 })
	// IKE forgets the children before the gateway has deleted their SAs.
	x.waitFor(t, 10*time.Second, "the tunnel down without child SAs", func() bool { return !x.g.tunnels["t1"].Up() })
	x.wantIKEStory(t, p1, p2+"none, waiting for traffic")

	if version == 1 {
		// A lifetime below ISM's least is refused.
		if out, err := x.env.Initiate("short", 10*time.Second); err == nil {
			t.Errorf("charon's quick mode with a 22 s lifetime succeeded:\n%s", out)
		}
		// ISM logs the refusal once its notify is on its way: wait for it.
		x.waitFor(t, 10*time.Second, "the log of why the 22 s lifetime was refused", func() bool {
			return strings.Contains(x.log.String(), "the minimum is 30s")
		})
		if n := x.childCount(t); n != 0 {
			t.Errorf("%d child SAs after the refused one, want none", n)
		}
	}
}

// childTraffic is a child SA pair: the packets its outbound and inbound
// SAs carried, and their SPIs.
type childTraffic struct {
	out, in       uint64
	spiOut, spiIn uint32
}

// childMap is a tunnel's child SAs by their remote selectors.
type childMap map[string]childTraffic

// children returns t1's child SAs as IKE lists them (the newest of those
// with the same selectors), each with the packets its SAs carried as the
// datapath counts them.
func (x *lab) children(t *testing.T) childMap {
	t.Helper()
	m := childMap{}
	for _, tu := range x.g.Snapshot().Tunnels {
		if tu.Name != "ipsec:t1" || tu.IKE == nil {
			continue
		}
		for _, c := range tu.IKE.Children {
			ct := childTraffic{spiOut: c.OutboundSPI, spiIn: c.InboundSPI}
			for _, sa := range tu.SAs {
				switch {
				case sa.Direction == "outbound" && sa.SPI == fmt.Sprintf("0x%08x", c.OutboundSPI):
					ct.out = sa.Packets
				case sa.Direction == "inbound" && sa.SPI == fmt.Sprintf("0x%08x", c.InboundSPI):
					ct.in = sa.Packets
				}
			}
			m[c.Remote.String()] = ct
		}
	}
	return m
}

// childCount returns how many child SA pairs t1 has.
func (x *lab) childCount(t *testing.T) int {
	t.Helper()
	for _, tu := range x.g.Snapshot().Tunnels {
		if tu.Name == "ipsec:t1" && tu.IKE != nil {
			return len(tu.IKE.Children)
		}
	}
	return 0
}

// wantChildren checks that t1's child SAs have these remote selectors.
func (x *lab) wantChildren(t *testing.T, what string, remotes ...string) {
	t.Helper()
	got := x.children(t)
	for _, r := range remotes {
		if _, ok := got[r]; !ok || x.childCount(t) != len(remotes) {
			t.Errorf("%s: child SAs to %v, want %v:\n%s", what, got, remotes, x.show(t, "show ipsec tunnel detail"))
			return
		}
	}
}

// negotiation returns t1's negotiation of a child to remote, zero if none.
func (x *lab) negotiation(t *testing.T, remote string) ike.NegotiationStatus {
	t.Helper()
	for _, tu := range x.g.Snapshot().Tunnels {
		if tu.Name != "ipsec:t1" || tu.IKE == nil {
			continue
		}
		for _, n := range tu.IKE.Negotiations {
			if n.Remote.String() == remote {
				return n
			}
		}
	}
	return ike.NegotiationStatus{}
}

// wantIKEStory checks that tunnel detail and `show ike sa` tell the same
// story of t1's IKE SA: established, by its SPIs; and the child SAs'
// line (child).
func (x *lab) wantIKEStory(t *testing.T, phase1, child string) {
	t.Helper()
	rows := x.ikeSARows(t)
	if len(rows) != 1 || !strings.Contains(rows[0], "established") {
		t.Fatalf("show ike sa: want one established IKE SA:\n%s", x.show(t, "show ike sa"))
	}
	f := strings.Fields(rows[0])
	spis := f[len(f)-1]
	x.wantShow(t, "show ipsec tunnel detail", phase1+swantest.SwanAddr.String(), ": established, "+spis, child)
}
