package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/etcdtest"
)

// Issue 11, §2 scale out and §3 "a node added and one drained: groups
// move, tunnels keep running": three tunnel groups of B's tunnels, each
// at its own VIP: g1 with m1 (manual), g2 with two (m2 manual, s2 IKEv1),
// g3 with s1 (IKEv1). Balanced by tunnel count, a second node takes g2
// (2 against 1 + 1); balanced by group count it would take g1, the first
// by name.

// joinVIPs are the groups' VIPs.
var joinVIPs = map[string]string{"g1": clusterVIP, "g2": "203.0.113.101", "g3": "203.0.113.102"}

// joinNodeConf is a node's configuration: the three groups.
func joinNodeConf(dir, node, cert, key string, etcd *etcdtest.Cluster) string {
	var eps strings.Builder
	for _, ep := range etcd.Endpoints() {
		fmt.Fprintf(&eps, "cluster etcd endpoint %s\n", ep)
	}
	return fmt.Sprintf(`cluster node %[1]s
%[2]scluster etcd ca-certificate %[3]s
cluster etcd certificate %[4]s key %[5]s
cluster lease ttl 2
cluster etcd election-timeout 500
cluster key-file %[6]s/cluster.key
cluster group g1
  virtual-address %[7]s/24
  tunnel ipsec:m1
cluster group g2
  virtual-address %[11]s/24
  tunnel ipsec:m2
  tunnel ipsec:s2
cluster group g3
  virtual-address %[12]s/24
  tunnel ipsec:s1
checkpoint state-directory %[6]s/state-%[1]s
checkpoint key-file %[6]s/state.key
checkpoint interval 200
ipsec isakmp-policy-rule 10
  encryption aes128
  hash sha
  group 14
  authentication pre-shared-key
ipsec transform-set gcm
  transform 1 esp-aes128-gcm16
ipsec pre-shared-key address 203.0.113.50 ascii "%[8]s"
interface tunnel ipsec:m1
  ip address 198.51.100.9 255.255.255.252
  tunnel source %[7]s
  tunnel destination 203.0.113.50
  tunnel transform-set gcm
  tunnel sa inbound esp spi 0x2001 cipher-key %[10]s
  tunnel sa outbound esp spi 0x1001 cipher-key %[9]s
interface tunnel ipsec:s1
  ip address 198.51.100.13 255.255.255.252
  tunnel type signaled
  tunnel source %[12]s
  tunnel destination 203.0.113.50
  tunnel transform-set gcm
  tunnel local-selector 198.51.100.12/30
  tunnel remote-selector 198.51.100.66/32
interface tunnel ipsec:m2
  ip address 198.51.100.17 255.255.255.252
  tunnel source %[11]s
  tunnel destination 203.0.113.50
  tunnel transform-set gcm
  tunnel sa inbound esp spi 0x2002 cipher-key %[10]s
  tunnel sa outbound esp spi 0x1002 cipher-key %[9]s
interface tunnel ipsec:s2
  ip address 198.51.100.21 255.255.255.252
  tunnel type signaled
  tunnel source %[11]s
  tunnel destination 203.0.113.50
  tunnel transform-set gcm
  tunnel local-selector 198.51.100.20/30
  tunnel remote-selector 198.51.100.68/32
ip route 198.51.100.65/32 ipsec:m1
ip route 198.51.100.66/32 ipsec:s1
ip route 198.51.100.67/32 ipsec:m2
ip route 198.51.100.68/32 ipsec:s2
`, node, eps.String(), etcd.PKI.CAFile, cert, key, dir, clusterVIP, restartPSK, restartK1, restartK2, joinVIPs["g2"], joinVIPs["g3"])
}

// joinPeerConf is B: a tunnel to each node-side tunnel, at its group's VIP.
func joinPeerConf() string {
	return fmt.Sprintf(`checkpoint interval 0
ipsec isakmp-policy-rule 10
  encryption aes128
  hash sha
  group 14
  authentication pre-shared-key
ipsec transform-set gcm
  transform 1 esp-aes128-gcm16
ipsec pre-shared-key address %[5]s ascii "%[1]s"
ipsec pre-shared-key address %[6]s ascii "%[1]s"
ipsec dpd timers sent 2 silent 4 idle 3
interface tunnel ipsec:m1
  ip address 198.51.100.10 255.255.255.252
  tunnel source 203.0.113.50
  tunnel destination %[4]s
  tunnel transform-set gcm
  tunnel sa inbound esp spi 0x1001 cipher-key %[2]s
  tunnel sa outbound esp spi 0x2001 cipher-key %[3]s
interface tunnel ipsec:s1
  ip address 198.51.100.14 255.255.255.252
  tunnel type signaled
  tunnel source 203.0.113.50
  tunnel destination %[6]s
  tunnel transform-set gcm
  tunnel local-selector 198.51.100.66/32
  tunnel remote-selector 198.51.100.12/30
interface tunnel ipsec:m2
  ip address 198.51.100.18 255.255.255.252
  tunnel source 203.0.113.50
  tunnel destination %[5]s
  tunnel transform-set gcm
  tunnel sa inbound esp spi 0x1002 cipher-key %[2]s
  tunnel sa outbound esp spi 0x2002 cipher-key %[3]s
interface tunnel ipsec:s2
  ip address 198.51.100.22 255.255.255.252
  tunnel type signaled
  tunnel source 203.0.113.50
  tunnel destination %[5]s
  tunnel transform-set gcm
  tunnel local-selector 198.51.100.68/32
  tunnel remote-selector 198.51.100.20/30
`, restartPSK, restartK1, restartK2, clusterVIP, joinVIPs["g2"], joinVIPs["g3"])
}

// ownedBy returns the groups the node owns, sorted.
func (d *daemon) ownedBy() []string {
	st := d.cluster()
	var out []string
	for _, g := range st.Groups {
		if g.Owner == st.Node && g.Local == "owner" {
			out = append(out, g.Name)
		}
	}
	slices.Sort(out)
	return out
}

// TestClusterJoinAndDrain: n1 owns the three groups; n2 joins the running
// cluster and takes its share by tunnel count (g2, two tunnels, against
// g1 and g3 with one each: 2 and 2), by a handover while B pings through
// every tunnel; then `ismctl cluster drain` on n1 hands g1 and g3 over to
// n2. Through both, every tunnel keeps carrying pings, B sees no new IKE
// SA (no renegotiation) and drops nothing as a replay.
func TestClusterJoinAndDrain(t *testing.T) {
	x := newClusterLabOf(t, joinNodeConf, joinPeerConf(),
		[]string{"198.51.100.65/32", "198.51.100.66/32", "198.51.100.67/32", "198.51.100.68/32"}, false, "n1", "n2")
	n1, n2 := x.nodes["n1"], x.nodes["n2"]
	n1.start()
	n1.waitFor(30*time.Second, "n1 owning the three groups", func() bool { return len(n1.ownedBy()) == 3 })
	x.b.start()
	tunnels := []string{"m1", "s1", "m2", "s2"}
	pings := map[string]*pinger{
		"m1": startPing(t, x.bNS, "198.51.100.65", "198.51.100.9", 10*time.Millisecond),
		"s1": startPing(t, x.bNS, "198.51.100.66", "198.51.100.13", 10*time.Millisecond),
		"m2": startPing(t, x.bNS, "198.51.100.67", "198.51.100.17", 10*time.Millisecond),
		"s2": startPing(t, x.bNS, "198.51.100.68", "198.51.100.21", 10*time.Millisecond),
	}
	flowing := func(what string) {
		t.Helper()
		base := map[string]int{}
		for name, p := range pings {
			base[name] = p.count()
		}
		x.b.waitFor(10*time.Second, what, func() bool {
			for name, p := range pings {
				if p.count() < base[name]+50 {
					return false
				}
			}
			return true
		})
	}
	flowing("pings through the four tunnels via n1")
	bIKE := cookies(x.b.mustShow("show", "ike", "sa"))
	drops := func() (n uint64) {
		ts := x.b.tunnels()
		for _, name := range tunnels {
			n += ts[name].Inbound.Drops["replay"]
		}
		return n
	}
	bDrops := drops()
	unchanged := func(when string) {
		t.Helper()
		if after := cookies(x.b.mustShow("show", "ike", "sa")); after != bIKE || bIKE == "" {
			t.Errorf("%s: B's IKE SAs changed:\nbefore %s\nafter  %s", when, bIKE, after)
		}
		if n := drops(); n != bDrops {
			t.Errorf("%s: B dropped %d packets as replays", when, n-bDrops)
		}
	}

	// n2 joins: g2 (two tunnels) moves to it, g1 and g3 stay.
	n2.start()
	n2.waitFor(30*time.Second, "n2 owning a group", func() bool { return len(n2.ownedBy()) > 0 })
	if got := n2.ownedBy(); !slices.Equal(got, []string{"g2"}) {
		t.Fatalf("after the join n2 owns %v, want [g2]", got)
	}
	flowing("pings through the four tunnels after n2 joined")
	if got := n1.ownedBy(); !slices.Equal(got, []string{"g1", "g3"}) {
		t.Errorf("after the join n1 owns %v, want [g1 g3]", got)
	}
	unchanged("after the join")
	st := n2.cluster()
	if len(st.Takeovers) != 1 || st.Takeovers[0].Group != "g2" || !st.Takeovers[0].Handover {
		t.Errorf("n2's takeovers after the join: %+v", st.Takeovers)
	} else {
		t.Logf("join: g2 handed over to n2, %v from n1's stop to n2's start", st.Takeovers[0].Gap)
	}

	// n1 drains: g1 and g3 move to n2.
	// The drain returns once n1 owns nothing and etcd names the new
	// owners; n2 may still be starting them.
	out := n1.mustShow("cluster", "drain")
	if got := n1.ownedBy(); len(got) != 0 {
		t.Errorf("after %q n1 owns %v", out, got)
	}
	n2.waitFor(10*time.Second, "n2 owning the three groups", func() bool { return slices.Equal(n2.ownedBy(), []string{"g1", "g2", "g3"}) })
	flowing("pings through the four tunnels after the drain")
	unchanged("after the drain")
	for _, tk := range n2.cluster().Takeovers {
		if !tk.Handover {
			t.Errorf("n2 took %s by a failover, not a handover: %+v", tk.Group, tk)
		}
		t.Logf("%s handed over to n2, %v from the stop to the start", tk.Group, tk.Gap)
	}
	for name, p := range pings {
		t.Logf("%s: %d pings answered, %d lost", name, p.count(), p.lost())
	}
}
