package v2

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// BenchmarkIKEv2SetupAmong measures one tunnel's IKE SA setup (IKE_SA_INIT
// and IKE_AUTH with its child SA) and its deletion while n-1 other tunnels
// are up, each with its own endpoint pair and IKE SA: the address plan of
// `ismbench scale`, a hub with one address initiating to a responder with
// one address per tunnel. Both daemons run in this process over the
// in-memory wire, so an op is both ends' work. The cost per op must not
// grow with n (issue 13: no O(n) work per tunnel event); compare the
// tunnels=1000 and tunnels=10000 rows of one run, as the machine's load
// moves both.
func BenchmarkIKEv2SetupAmong(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("tunnels=%d", n), func(b *testing.B) { benchSetupAmong(b, n) })
	}
}

// BenchmarkIKEv2ChildAmong measures one child SA's setup
// (CREATE_CHILD_SA) and deletion on an IKE SA that carries n-1 others: n
// tunnels between the same two addresses, each with its own selectors.
// Both ends run in this process; compare the rows of one run.
func BenchmarkIKEv2ChildAmong(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("tunnels=%d", n), func(b *testing.B) { benchChildAmong(b, n) })
	}
}

func benchChildAmong(b *testing.B, n int) {
	hubCfg, spokeCfg := scaleConfigs(b, n)
	for i := range n { // every tunnel between the hub and the first spoke
		hubCfg.Tunnels[i].Destination, spokeCfg.Tunnels[i].Source = scaleSpoke(0), scaleSpoke(0)
	}
	r := newScaleRig(b, n, hubCfg, spokeCfg, func(w *iketest.Wire, hub, spokes *Daemon) {
		w.Attach(scaleHub, hub)
		w.Attach(scaleSpoke(0), spokes)
	})
	hub, th, ts := r.hub, r.th, r.ts
	// t0 first, alone: the IKE SA and its first child; then the others.
	hub.Acquire("t0")
	th.wait(b, "up")
	ts.wait(b, "up")
	r.upAll(b, n, 100)
	b.ReportAllocs()
	for b.Loop() {
		hub.mu.Lock()
		c := hub.tunnels["t0"].cur()
		hub.mu.Unlock()
		hub.deleteChild(c, "benchmark", true)
		th.wait(b, "down")
		ts.wait(b, "down")
		hub.Acquire("t0")
		th.wait(b, "up")
		ts.wait(b, "up")
	}
	if st := hub.Status(); len(st.IKESAs) != 1 {
		b.Fatalf("%d IKE SAs at the hub, want 1", len(st.IKESAs))
	}
}

// scaleHub is the hub's address in the scale benchmark; scaleSpoke(i) is
// the responder's address of tunnel i, scaleNet(i) the subnet behind it.
var scaleHub = netip.MustParseAddr("2001:db8::1")

func scaleSpoke(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: byte(i >> 8), 15: byte(i)})
}

func scaleNet(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 2, byte(i >> 8), byte(i)}), 64)
}

// scaleConfigs returns the hub's and the responder's configurations of n
// tunnels, t0 to t(n-1).
func scaleConfigs(b *testing.B, n int) (hub, spokes ike.Config) {
	pol := ike.Policy{Encryption: ike.EncAES128GCM, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 31}
	set := []transform.Transform{mustTransform(b, "esp-aes128-gcm16")}
	inner := selector.FromPrefix(netip.MustParsePrefix("2001:db8:3::/48"))
	hub = ike.Config{Policies: []ike.Policy{pol}, Lifetime: ipsec.Lifetime{Time: 24 * time.Hour}}
	spokes = ike.Config{Policies: []ike.Policy{pol}, Lifetime: ipsec.Lifetime{Time: 24 * time.Hour},
		PreSharedKeys: []ike.PreSharedKey{{Peer: scaleHub.String(), Key: ipsec.Key("scale")}}}
	for i := range n {
		name, spoke, behind := fmt.Sprintf("t%d", i), scaleSpoke(i), selector.FromPrefix(scaleNet(i))
		hub.PreSharedKeys = append(hub.PreSharedKeys, ike.PreSharedKey{Peer: spoke.String(), Key: ipsec.Key("scale")})
		hub.Tunnels = append(hub.Tunnels, ike.Tunnel{Name: name, Source: scaleHub, Destination: spoke,
			LocalSelector: inner, RemoteSelector: behind, TransformSet: set})
		spokes.Tunnels = append(spokes.Tunnels, ike.Tunnel{Name: name, Source: spoke, Destination: scaleHub,
			LocalSelector: behind, RemoteSelector: inner, TransformSet: set})
	}
	return hub, spokes
}

// eventTap passes the events of one tunnel on a channel and counts the
// others' up events; it never blocks.
type eventTap struct {
	watch  string
	events chan string // the watched tunnel's: "up", "down", "failed"
	ups    chan struct{}
}

func newEventTap(watch string, n int) *eventTap {
	return &eventTap{watch: watch, events: make(chan string, 16), ups: make(chan struct{}, n)}
}

func (e *eventTap) put(tunnel, kind string) {
	switch {
	case tunnel == e.watch:
		e.events <- kind
	case kind == "up":
		e.ups <- struct{}{}
	}
}

func (e *eventTap) TunnelUp(tunnel string, _ netip.AddrPort)          { e.put(tunnel, "up") }
func (e *eventTap) TunnelDown(tunnel, _ string)                       { e.put(tunnel, "down") }
func (e *eventTap) NegotiationFailed(tunnel, _ string)                { e.put(tunnel, "failed") }
func (e *eventTap) PeerDead(string, netip.Addr, time.Time)            {}
func (e *eventTap) Failover(tunnel string, _, _ netip.Addr, _ string) { e.put(tunnel, "failover") }

// up waits for another tunnel's up event.
func (e *eventTap) up(b *testing.B) {
	select {
	case <-e.ups:
	case <-time.After(30 * time.Second):
		b.Fatal("a tunnel did not come up")
	}
}

// wait waits for the watched tunnel's next event, which must be kind.
func (e *eventTap) wait(b *testing.B, kind string) {
	select {
	case k := <-e.events:
		if k != kind {
			b.Fatalf("%s: %s, want %s", e.watch, k, kind)
		}
	case <-time.After(30 * time.Second):
		b.Fatalf("%s: no %s", e.watch, kind)
	}
}

// scaleRig is a hub and a responder daemon over the in-memory wire, with
// an eventTap each watching t0.
type scaleRig struct {
	hub, spokes *Daemon
	th, ts      *eventTap
}

// newScaleRig starts the two daemons of n tunnels; attach puts them on
// the wire. They close when the benchmark ends.
func newScaleRig(b *testing.B, n int, hubCfg, spokeCfg ike.Config, attach func(w *iketest.Wire, hub, spokes *Daemon)) *scaleRig {
	w := iketest.NewWire()
	b.Cleanup(w.Close)
	r := &scaleRig{th: newEventTap("t0", n), ts: newEventTap("t0", n)}
	var err error
	if r.hub, err = New(hubCfg, iketest.NewInstaller(1), w, r.th); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.hub.Close() })
	if r.spokes, err = New(spokeCfg, iketest.NewInstaller(2), w, r.ts); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.spokes.Close() })
	attach(w, r.hub, r.spokes)
	return r
}

// upAll brings up t1 to t(n-1), at most window setups at a time, and
// waits until both ends have them up.
func (r *scaleRig) upAll(b *testing.B, n, window int) {
	for i := 1; i < n; i++ {
		if i > window {
			r.th.up(b)
		}
		r.hub.Acquire(fmt.Sprintf("t%d", i))
	}
	for range min(window, n-1) {
		r.th.up(b)
	}
	for range n - 1 {
		r.ts.up(b)
	}
}

func benchSetupAmong(b *testing.B, n int) {
	hubCfg, spokeCfg := scaleConfigs(b, n)
	r := newScaleRig(b, n, hubCfg, spokeCfg, func(w *iketest.Wire, hub, spokes *Daemon) {
		w.Attach(scaleHub, hub)
		w.AttachOthers(spokes)
	})
	hub, th, ts := r.hub, r.th, r.ts
	r.upAll(b, n, 200)
	b.ReportAllocs()
	for b.Loop() {
		hub.Acquire("t0")
		th.wait(b, "up")
		ts.wait(b, "up")
		hub.mu.Lock()
		sa := hub.findIKESA(scaleHub, scaleSpoke(0))
		hub.mu.Unlock()
		sa.lock()
		sa.sendDeleteIKE()
		sa.destroy("benchmark")
		sa.unlock()
		th.wait(b, "down")
		ts.wait(b, "down")
	}
	if st := hub.Status(); len(st.IKESAs) != n-1 {
		b.Fatalf("%d IKE SAs at the hub, want %d", len(st.IKESAs), n-1)
	}
}

// BenchmarkIKEv2Reconfigure measures a reload of n tunnels into a daemon
// that has them: the cost per tunnel (ns/op divided by n) must not grow
// with n.
func BenchmarkIKEv2Reconfigure(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("tunnels=%d", n), func(b *testing.B) {
			hub, _ := scaleConfigs(b, n)
			d, err := New(hub, iketest.NewInstaller(1), iketest.NewWire(), iketest.NewListener())
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Reconfigure(hub); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/tunnel")
		})
	}
}
