package v1

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// TestPairInitialContactPerAddress: a hub (A, one address) sets up a
// tunnel with each of two addresses of B, one IKE SA each; each phase 1
// carries INITIAL-CONTACT (A has no other IKE SA with that destination).
// B deletes only what it holds between the same two addresses, so the
// first tunnel stays up when the second comes.
func TestPairInitialContactPerAddress(t *testing.T) {
	t.Parallel()
	ca, a, b, w := hubAndTwoAddresses(t, nil)
	for _, name := range []string{"t1", "t2"} {
		a.d.Acquire(name)
		w.waitEvent(t, b.lis, "up", name, 10*time.Second)
		w.waitEvent(t, a.lis, "up", name, 10*time.Second)
	}
	w.sleep(t, time.Second)
	for _, name := range []string{"t1", "t2"} {
		if st := tunnelStatus(t, b.d, name); st.State != "up" {
			t.Errorf("B's %s is %s (%s) after both came up", name, st.State, st.LastError)
		}
	}
	if n := len(b.d.Status().IKESAs); n != 2 {
		t.Errorf("B holds %d IKE SAs, want one per address", n)
	}
	checkPairIndex(t, a.d)
	checkPairIndex(t, b.d)
	// A deleted tunnel's SAs leave the index with it.
	ca.Tunnels = ca.Tunnels[:1]
	if err := a.d.Reconfigure(ca); err != nil {
		t.Fatal(err)
	}
	w.sleep(t, time.Second)
	checkPairIndex(t, a.d)
	checkPairIndex(t, b.d)
	a.d.mu.Lock()
	_, children := a.d.pairs.all()
	pairs := map[peerKey]bool{}
	for _, c := range children {
		pairs[childPair(c)] = true
	}
	n := len(pairs)
	a.d.mu.Unlock()
	if n != 1 {
		t.Errorf("A's index holds child SAs of %d pairs after t2 was removed, want 1", n)
	}
}

// checkPairIndex asserts that the endpoint-pair index holds exactly the
// IKE SAs of Daemon.sas and the child SAs of Daemon.children.
func checkPairIndex(t *testing.T, d *Daemon) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	sas, children := d.pairs.all()
	for _, sa := range sas {
		if d.sas[sa.key()] != sa || !slices.Contains(slices.Collect(d.pairs.sasOf(sa.peer())), sa) {
			t.Errorf("index holds IKE SA %v, not in the daemon's SAs or not found under %v", sa.key(), sa.peer())
		}
	}
	if len(sas) != len(d.sas) {
		t.Errorf("index holds %d IKE SAs, the daemon %d", len(sas), len(d.sas))
	}
	for _, c := range children {
		if d.childLocked(c.in) != c || d.childLocked(c.out) != c || !slices.Contains(slices.Collect(d.pairs.childrenOf(childPair(c))), c) {
			t.Errorf("index holds child SA %v, not in the daemon's children or not found under %v", c.in, childPair(c))
		}
	}
	if n, m := 2*len(children), d.children.Keys(); n != m {
		t.Errorf("index holds %d child SAIDs, the daemon %d", n, m)
	}
}

// hubAndTwoAddresses starts A (one address) with tunnel t1 to B's addrB
// and t2 to B's addrC, on a sim; prepare, if not nil, runs on B's daemon
// before either tunnel starts. It returns A's configuration.
func hubAndTwoAddresses(t *testing.T, prepare func(b *Daemon)) (ike.Config, *pairSide, *pairSide, *sim) {
	net2 := netip.MustParsePrefix("203.0.113.128/25")
	ca, cb := baseConfig(), baseConfig()
	ca.PreSharedKeys = append(ca.PreSharedKeys, ike.PreSharedKey{Peer: addrC.String(), Key: ipsec.Key("pair-secret")})
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha"),
		pairTunnel(t, "t2", addrA, addrC, netA, net2, "esp-aes128-hmac-sha")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha"),
		pairTunnel(t, "t2", addrC, addrA, net2, netA, "esp-aes128-hmac-sha")}
	w := newSim(t)
	a := newSide(t, w, ca, addrA, 0x1000)
	b := newSide(t, w, cb, addrB, 0x2000)
	if prepare != nil {
		prepare(b.d)
	}
	w.Attach(addrC, b.d)
	return ca, a, b, w
}
