package cluster

import (
	"context"
	"crypto/sha512"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// gwEvent is one call the cluster made into a test gateway.
type gwEvent struct {
	Kind   string    `json:"kind"` // start, stop
	Node   string    `json:"node"`
	Group  string    `json:"group"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
	// For a start: the previous owner, whether it was a handover, and
	// for each tunnel's outbound SA where it resumes (checkpoint.Plan).
	From     string            `json:"from,omitempty"`
	Handover bool              `json:"handover,omitempty"`
	Resume   map[string]uint64 `json:"resume,omitempty"`
	Records  int               `json:"records,omitempty"`
}

// testGateway stands in for ism's line card: it exports SAs whose
// sequence numbers advance with the clock (rate packets a second from
// when it was made), records every Start and Stop with its time, and
// resumes what a Start hands it with checkpoint.Plan. It is no etcd mock:
// the cluster under test talks to real etcd; this is the other side of
// the seam, which the gateway integration implements next.
type testGateway struct {
	node   string
	secret []byte // every key is derived from it, so tests can grep for them
	rate   float64
	born   time.Time
	idle   map[string]bool // tunnels that carry no traffic
	notify func(gwEvent)

	mu     sync.Mutex
	events []gwEvent
	owned  map[string]bool
}

func newTestGateway(node string, secret []byte, notify func(gwEvent)) *testGateway {
	return &testGateway{node: node, secret: secret, rate: 10000, born: time.Now(), idle: map[string]bool{},
		notify: notify, owned: map[string]bool{}}
}

// key derives a key for tunnel, SA direction and use from the secret.
func (gw *testGateway) key(tunnel string, dir ipsec.Direction, use string, n int) ipsec.Key {
	h := sha512.Sum512(fmt.Appendf(nil, "%x/%s/%d/%s", gw.secret, tunnel, dir, use))
	return ipsec.Key(h[:n]).Clone()
}

// seq is the outbound sequence number a tunnel has reached by t.
func (gw *testGateway) seq(tunnel string, t time.Time) uint64 {
	if gw.idle[tunnel] {
		return 42
	}
	return 42 + uint64(gw.rate*t.Sub(gw.born).Seconds())
}

var testTransform, _ = transform.Lookup("esp-aes256-gcm16")

func (gw *testGateway) Export(group string) ([]checkpoint.Tunnel, error) {
	gw.mu.Lock()
	owned := gw.owned[group]
	gw.mu.Unlock()
	if !owned {
		return nil, fmt.Errorf("test gateway %s: export of %s, not owned", gw.node, group)
	}
	var out []checkpoint.Tunnel
	for _, name := range testGroupTunnels[group] {
		out = append(out, gw.tunnel(name, time.Now()))
	}
	return out, nil
}

func (gw *testGateway) tunnel(name string, now time.Time) checkpoint.Tunnel {
	a, b := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("198.51.100.7")
	out := checkpoint.SA{ID: ipsec.SAID{Dst: b, SPI: 0x10000 + uint32(len(name)), Protocol: transform.ESP},
		Direction: ipsec.Outbound, Transform: testTransform, Mode: ipsec.Tunnel, Src: a, Dst: b, ESN: true,
		ReplayWindow: 1024, Used: ipsec.Lifetime{Time: now.Sub(gw.born), Packets: gw.seq(name, now)},
		CipherKey: gw.key(name, ipsec.Outbound, "cipher", testTransform.CipherKeyLen()), Seq: gw.seq(name, now)}
	in := out
	in.ID, in.Direction, in.Src, in.Dst, in.Seq = ipsec.SAID{Dst: a, SPI: 0x20000 + uint32(len(name)), Protocol: transform.ESP}, ipsec.Inbound, b, a, 0
	in.CipherKey = gw.key(name, ipsec.Inbound, "cipher", testTransform.CipherKeyLen())
	in.Replay = ipsec.ReplayState{Size: 1024}
	in.Replay.Set(gw.seq(name, now))
	ike := checkpoint.IKESA{Version: 2, Format: 1, Data: gw.key(name, ipsec.Outbound, "ike", 32)}
	return checkpoint.Tunnel{Name: name, SAs: []checkpoint.SA{out, in}, IKE: []checkpoint.IKESA{ike}}
}

func (gw *testGateway) Start(ctx context.Context, t Takeover) error {
	ev := gwEvent{Kind: "start", Node: gw.node, Group: t.Group.Name, From: t.Previous, Handover: t.Handover,
		Resume: map[string]uint64{}, Records: len(t.Tunnels)}
	for i := range t.Tunnels {
		tu := &t.Tunnels[i]
		d := checkpoint.Plan(tu, checkpoint.Restart{Policy: t.Policy, Down: time.Since(t.Written[tu.Name]),
			Signaled: true, ImportIKE: func(k checkpoint.IKESA) bool { return k.Version == 2 }})
		for _, r := range d.SAs {
			if r.SA.Direction == ipsec.Outbound {
				ev.Resume[tu.Name] = r.After
			}
		}
	}
	if !t.Valid() {
		return fmt.Errorf("test gateway %s: started %s with an invalid fence", gw.node, t.Group.Name)
	}
	ev.At = time.Now()
	gw.mu.Lock()
	gw.owned[t.Group.Name] = true
	gw.events = append(gw.events, ev)
	gw.mu.Unlock()
	if gw.notify != nil {
		gw.notify(ev)
	}
	return nil
}

func (gw *testGateway) Stop(group string, why StopReason) {
	ev := gwEvent{Kind: "stop", Node: gw.node, Group: group, At: time.Now(), Reason: why.String()}
	gw.mu.Lock()
	gw.owned[group] = false
	gw.events = append(gw.events, ev)
	gw.mu.Unlock()
	if gw.notify != nil {
		gw.notify(ev)
	}
}

// owns returns the groups the gateway runs now.
func (gw *testGateway) owns() map[string]bool {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	out := map[string]bool{}
	for g, ok := range gw.owned {
		if ok {
			out[g] = true
		}
	}
	return out
}

func (gw *testGateway) log() []gwEvent {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	return append([]gwEvent(nil), gw.events...)
}

// testGroupTunnels are the tunnels of the test groups.
var testGroupTunnels = map[string][]string{}

func init() {
	for g := range 8 {
		for t := range 5 {
			name := fmt.Sprintf("g%d", g)
			testGroupTunnels[name] = append(testGroupTunnels[name], fmt.Sprintf("g%d-t%d", g, t))
		}
	}
	for t := range 20 {
		testGroupTunnels["busy"] = append(testGroupTunnels["busy"], fmt.Sprintf("busy-t%d", t))
		testGroupTunnels["quiet"] = append(testGroupTunnels["quiet"], fmt.Sprintf("quiet-t%d", t))
	}
}

// testGroups returns the named test groups, each with a VIP.
func testGroups(names ...string) []Group {
	var out []Group
	for i, n := range names {
		out = append(out, Group{Name: n, VIP: netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i)}), 24),
			Tunnels: testGroupTunnels[n]})
	}
	return out
}
