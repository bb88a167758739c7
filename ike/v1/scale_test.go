package v1

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// nullInstaller accepts every SA and keeps nothing: the daemon's own
// memory is what a scale test measures.
type nullInstaller struct {
	mu   sync.Mutex
	next uint32
}

func (n *nullInstaller) AllocateSPI(string, transform.Protocol, netip.Addr) (uint32, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.next++
	return 0x1000 + n.next, nil
}
func (*nullInstaller) AddSA(ipsec.SAID, ike.UserSA) error      { return nil }
func (*nullInstaller) DeleteSA(ipsec.SAID) error               { return nil }
func (*nullInstaller) QuerySA(ipsec.SAID) (ike.SAUsage, error) { return ike.SAUsage{}, nil }

// upListener counts tunnels that came up.
type upListener struct {
	mu sync.Mutex
	up int
	ch chan struct{}
}

func (l *upListener) TunnelUp(string, netip.AddrPort) {
	l.mu.Lock()
	l.up++
	l.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
	default:
	}
}
func (*upListener) TunnelDown(string, string)                       {}
func (*upListener) NegotiationFailed(string, string)                {}
func (*upListener) PeerDead(string, netip.Addr, time.Time)          {}
func (*upListener) Failover(string, netip.Addr, netip.Addr, string) {}

// scaleTunnels returns n tunnels between the two addresses with /32
// selectors of their own.
func scaleTunnels(n int, local, remote netip.Addr, flip bool) []ike.Tunnel {
	var ts []ike.Tunnel
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	for i := range n {
		a := netip.AddrFrom4([4]byte{198, 51, byte(100 + i/250), byte(1 + i%250)})
		b := netip.AddrFrom4([4]byte{203, 0, byte(113 + i/250), byte(1 + i%250)})
		if flip {
			a, b = b, a
		}
		ts = append(ts, ike.Tunnel{Name: fmt.Sprintf("t%d", i), Source: local, Destination: remote,
			LocalSelector: selectorFromPrefix(netip.PrefixFrom(a, 32)), RemoteSelector: selectorFromPrefix(netip.PrefixFrom(b, 32)),
			TransformSet: []transform.Transform{tr}})
	}
	return ts
}

// TestIdleTunnelFootprint brings up many tunnels over one IKE SA and
// checks that idle tunnels hold no goroutine and stay within the memory
// budget (8 KiB of daemon memory per idle tunnel). It runs on a sim, so
// that a loaded machine makes it slower, never a negotiation time out.
func TestIdleTunnelFootprint(t *testing.T) {
	const n = 400
	p := policy(ike.EncAES128, ike.HashSHA256, ike.AuthPSK, 19)
	ca, cb := baseConfig(p), baseConfig(p)
	ca.Tunnels = scaleTunnels(n, addrA, addrB, false)
	cb.Tunnels = scaleTunnels(n, addrB, addrA, true)
	ca.Logger, cb.Logger = nil, nil
	w := newSim(t)
	la, lb := &upListener{ch: make(chan struct{}, 1)}, &upListener{ch: make(chan struct{}, 1)}
	runtime.GC()
	goroutines := runtime.NumGoroutine()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	a, err := New(w.config(ca), &nullInstaller{}, w, la)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(w.config(cb), &nullInstaller{}, w, lb)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	w.Attach(addrA, a)
	w.Attach(addrB, b)
	for i := range n {
		a.Acquire(fmt.Sprintf("t%d", i))
	}
	ups := func() (int, int) {
		la.mu.Lock()
		defer la.mu.Unlock()
		lb.mu.Lock()
		defer lb.mu.Unlock()
		return la.up, lb.up
	}
	w.waitUntil(t, 60*time.Second, "every tunnel up", func() bool {
		up, upb := ups()
		return up == n && upb == n
	})
	w.settle(t) // the last exchanges end
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// Both daemons' state, the wire's queues and goroutines included.
	perTunnel := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / (2 * n)
	extra := runtime.NumGoroutine() - goroutines
	t.Logf("%d tunnels per side: %d bytes of heap per tunnel per side, %d goroutines more than before", n, perTunnel, extra)
	if perTunnel > 8<<10 {
		t.Errorf("%d bytes per idle tunnel, budget 8 KiB", perTunnel)
	}
	if extra > 10 {
		t.Errorf("%d goroutines for %d idle tunnels", extra, n)
	}
	if st := a.Status(); len(st.IKESAs) != 1 {
		t.Errorf("%d IKE SAs, want 1 shared by every tunnel", len(st.IKESAs))
	}
}

// BenchmarkSetup measures phase 1 + quick mode setups between two
// daemons in memory, one new peer pair per setup (for the lead's
// comparison with strongSwan; see ismbench for the real one).
func BenchmarkSetup(b *testing.B) {
	p := policy(ike.EncAES128, ike.HashSHA256, ike.AuthPSK, 14)
	w := newTestWire(b)
	for i := 0; b.Loop(); i++ {
		la := netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i%200)})
		lb := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i%200)})
		ca, cb := baseConfig(p), baseConfig(p)
		ca.PreSharedKeys = append(ca.PreSharedKeys, ike.PreSharedKey{Peer: lb.String(), Key: ca.PreSharedKeys[0].Key})
		cb.PreSharedKeys = append(cb.PreSharedKeys, ike.PreSharedKey{Peer: la.String(), Key: cb.PreSharedKeys[0].Key})
		ca.Tunnels = scaleTunnels(1, la, lb, false)
		cb.Tunnels = scaleTunnels(1, lb, la, true)
		l := &upListener{ch: make(chan struct{}, 1)}
		da, _ := New(ca, &nullInstaller{}, w, l)
		db, _ := New(cb, &nullInstaller{}, w, &upListener{ch: make(chan struct{}, 1)})
		w.Attach(la, da)
		w.Attach(lb, db)
		da.Acquire("t0")
		<-l.ch
		da.Close()
		db.Close()
	}
}
