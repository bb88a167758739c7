package ism

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
)

// The gateway-level IKEv1 cases against strongSwan (swan_*_test.go): ISM in
// process in one namespace, charon in the other (internal/swantest), each
// case with ISM as initiator and as responder, then traffic through the
// tunnel. This file holds what they share: both sides' configurations,
// bringing a tunnel up from either end, and reading the show commands.

// Identities of the cases (the seed's examples).
const (
	gwFQDN     = "gw.customer77.isp.net"
	branchFQDN = "branch245.customer77.isp.net"
	branchUser = "user4919@branch245.customer77.isp.net"
)

// Inner addresses: ISM's side (198.51.100.0/24, on ISM's loopback) and
// charon's (203.0.113.0/24, on charon's).
const (
	ismHost  = "198.51.100.1"
	swanHost = "203.0.113.1"
)

// swanRoles are the two ways a case runs: ISM starts the negotiation (the
// first packet to the tunnel), or charon does (swanctl --initiate).
var swanRoles = []string{"initiator", "responder"}

// swanPeer is charon's swanctl.conf: one connection "ism" (IKEv1 unless
// Version says 2) with the child "net" (203.0.113.0/24 to 198.51.100.0/24)
// and any more children.
type swanPeer struct {
	// Name is the connection's name, "ism" unless set; Child its first
	// child's, "net" unless set.
	Name, Child string
	// Version is the IKE version, 1 unless 2.
	Version int
	// Addr is charon's address, default SwanAddr; another one is added
	// to its veth.
	Addr       string
	Aggressive bool
	Proposals  string          // IKE proposals
	ESP        string          // the child's esp_proposals (a DH group means PFS)
	LocalID    string          // default: charon's address
	RemoteID   string          // default: ISM's address
	Auth       string          // psk (default) or pubkey
	Cert       string          // the local certificate under x509/ (pubkey)
	PSK        string          // default swanPSK
	LocalTS    string          // the child's local_ts, default 203.0.113.0/24
	RemoteTS   string          // the child's remote_ts, default 198.51.100.0/24
	Timers     charon.Timers   // the child "net"'s
	IKETimers  charon.Timers   // the IKE SA's; zero: no rekey
	IKEExtra   []string        // more settings of the connection (over_time)
	Children   []charon.Child  // more children
	Secrets    []charon.Secret // default: PSK for LocalID and RemoteID
}

// addr returns charon's address.
func (p swanPeer) addr() string {
	if p.Addr == "" {
		return swantest.SwanAddr.String()
	}
	return p.Addr
}

// withDefaults fills in what p leaves out.
func (p swanPeer) withDefaults() swanPeer {
	if p.Auth == "" {
		p.Auth = "psk"
	}
	if p.LocalID == "" {
		p.LocalID = p.addr()
	}
	if p.RemoteID == "" {
		p.RemoteID = swantest.ISMAddr.String()
	}
	if p.LocalTS == "" {
		p.LocalTS = "203.0.113.0/24"
	}
	if p.RemoteTS == "" {
		p.RemoteTS = "198.51.100.0/24"
	}
	if p.PSK == "" {
		p.PSK = swanPSK
	}
	if p.Secrets == nil && p.Auth == "psk" {
		p.Secrets = []charon.Secret{{Name: "ike-1", IDs: []string{p.LocalID, p.RemoteID}, Secret: p.PSK}}
	}
	return p
}

func (p swanPeer) render() string { return renderPeers(p) }

// renderPeers renders charon's swanctl.conf with a connection for each
// peer (named "ism" unless Name says), with their secrets.
func renderPeers(peers ...swanPeer) string {
	var s charon.Swanctl
	for i, p := range peers {
		p = p.withDefaults()
		name := p.Name
		if name == "" {
			name = "ism"
		}
		s.Connections = append(s.Connections, p.connection(name))
		for _, sec := range p.Secrets {
			sec.Name = fmt.Sprintf("%s-%d", sec.Name, i)
			s.Secrets = append(s.Secrets, sec)
		}
	}
	return s.Render()
}

// connection is charon's connection name, with the defaults filled in.
func (p swanPeer) connection(name string) charon.Connection {
	if p.Version == 0 {
		p.Version = 1
	}
	conn := charon.Connection{Name: name, Version: p.Version, Aggressive: p.Aggressive,
		LocalAddrs: []string{p.addr()}, RemoteAddrs: []string{swantest.ISMAddr.String()}, Proposals: []string{p.Proposals},
		Timers: cmp.Or(p.IKETimers, charon.Timers{Rekey: charon.Never}),
		Local:  charon.End{Auth: p.Auth, ID: p.LocalID},
		Remote: charon.End{Auth: p.Auth, ID: p.RemoteID},
		Children: append([]charon.Child{{Name: cmp.Or(p.Child, "net"), LocalTS: []string{p.LocalTS}, RemoteTS: []string{p.RemoteTS},
			ESPProposals: []string{p.ESP}, Timers: p.Timers}}, p.Children...)}
	conn.Extra = p.IKEExtra
	if p.Cert != "" {
		conn.Local.Certs = []string{p.Cert}
	}
	if p.Version == 2 {
		// MOBIKE would move the IKE SA to charon's other addresses.
		no := false
		conn.Mobike = &no
	}
	return conn
}

// swanSpec is the lab of ISM against charon: charon with peer's
// configuration, ISM with side's (signaled).
func swanSpec(side ismConf, peer swanPeer, conf swantest.Conf) labSpec {
	conf.Swanctl = peer.render()
	conf.AggressivePSK = conf.AggressivePSK || peer.Aggressive
	return labSpec{charon: &conf, peerAddr: peer.Addr, a: func(x *lab) string { return side.signaled(x.a).String() }}
}

// swanSpecPeers is swanSpec with several connections, each at its peer's
// address (added to charon's link).
func swanSpecPeers(side ismConf, conf swantest.Conf, peers ...swanPeer) labSpec {
	conf.Swanctl = renderPeers(peers...)
	s := labSpec{charon: &conf, a: func(x *lab) string { return side.signaled(x.a).String() }}
	for _, p := range peers {
		if p.Addr != "" && p.Addr != swantest.SwanAddr.String() && !slices.Contains(s.peerAddrs, p.Addr) {
			s.peerAddrs = append(s.peerAddrs, p.Addr)
		}
	}
	return s
}

// signaled is c against charon: VR v in ISM's namespace ns, each tunnel's
// selectors 198.51.100.0/24 and 203.0.113.0/24 unless set.
func (c ismConf) signaled(ns string) ismConf {
	c.vrs = [][2]string{{"v", ns}}
	c.tunnels = append([]ismTunnel(nil), c.tunnels...)
	for i := range c.tunnels {
		tu := &c.tunnels[i]
		if tu.local == "" {
			tu.local = "198.51.100.0/24"
		}
		if tu.remote == "" {
			tu.remote = "203.0.113.0/24"
		}
	}
	return c
}

// bringUp negotiates the child "net" from the role's end and waits for a
// ping from ISM's host to charon's to get through.
func (x *lab) bringUp(t *testing.T, role string) {
	t.Helper()
	x.bringUpChild(t, role, "net", ismHost, swanHost)
}

// bringUpChild negotiates one child between ISM's host from and charon's
// host to: as initiator the pings start IKE, as responder charon does.
func (x *lab) bringUpChild(t *testing.T, role, child, from, to string) {
	t.Helper()
	if role == "responder" {
		if out, err := x.env.Initiate(child, 20*time.Second); err != nil {
			t.Fatalf("charon initiate %s: %v\n%s\n%s", child, err, out, x.show(t, "show ipsec tunnel detail"))
		}
		x.pingUntil(t, x.env.NSSwan, to, from, 3)
	}
	x.pingUntil(t, x.env.NSISM, from, to, 3)
}

// traffic checks a bringUp tunnel: a ping and a 1 MiB TCP transfer each
// way between ISM's host from and charon's host to.
func (x *lab) traffic(t *testing.T, from, to string) {
	t.Helper()
	x.pingUntil(t, x.env.NSISM, from, to, 3)
	transferBetween(t, x.env.NSISM, from, x.env.NSSwan, to, 1<<20)
	transferBetween(t, x.env.NSSwan, to, x.env.NSISM, from, 1<<20)
}

// show runs an operator command.
func (x *lab) show(t *testing.T, cmd string) string {
	t.Helper()
	out, _, err := x.g.Exec(cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out
}

// wantShow checks that a show command's output has every string.
func (x *lab) wantShow(t *testing.T, cmd string, want ...string) string {
	t.Helper()
	out := x.show(t, cmd)
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", cmd, w, out)
		}
	}
	return out
}

// ikeSARows returns the IKE SA lines of `show ike sa` (no header).
func (x *lab) ikeSARows(t *testing.T) []string {
	t.Helper()
	out := x.show(t, "show ike sa")
	if strings.HasPrefix(out, "No IKE SAs") {
		return nil
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return lines[1:]
}

// ikeCounters are the IKE counters as `show ipsec statistics` prints them.
type ikeCounters struct {
	received, malformed, unknownSA, authFailed, noProposal, retransmits, phase1, quickModes, rekeys uint64
}

var ikeCountersRE = regexp.MustCompile(`IKE: (\d+) received, (\d+) malformed, (\d+) unknown SA, (\d+) auth failures, (\d+) no proposal chosen, (\d+) retransmits, (\d+) phase 1 and (\d+) quick modes done, (\d+) rekeys`)

// ikeCounters reads the IKE line of `show ipsec statistics`.
func (x *lab) ikeCounters(t *testing.T) ikeCounters {
	t.Helper()
	out := x.show(t, "show ipsec statistics")
	m := ikeCountersRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("show ipsec statistics has no IKE counters:\n%s", out)
	}
	var n [9]uint64
	for i := range n {
		n[i], _ = strconv.ParseUint(m[i+1], 10, 64)
	}
	return ikeCounters{n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7], n[8]}
}

// waitFor polls cond every 100 ms until it holds, or fails the test after
// within with what and the tunnels' detail.
func (x *lab) waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(within); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v\n%s\n%s", what, within, x.show(t, "show ipsec tunnel detail"), x.show(t, "show ipsec statistics"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reloadCharon replaces charon's swanctl.conf and loads it again, the
// connections and secrets of the old one replaced.
func (x *lab) reloadCharon(t *testing.T, peer swanPeer) {
	t.Helper()
	path := filepath.Join(x.env.Dir, "swanctl", "swanctl.conf")
	if err := os.WriteFile(path, []byte(peer.render()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := x.env.Swanctl("--load-all", "--clear", "--file", path); err != nil {
		t.Fatalf("swanctl --load-all: %v\n%s", err, out)
	}
}
