package v2

import (
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/selector"
)

// checkIndexes fails the test unless the daemon's indexes hold exactly
// its IKE SAs and tunnels where their endpoints and identities say: the
// pair tests run it as they end, whatever moved the SAs and tunnels on
// the way (NAT-T floats, a peer's new address, failovers, rekeys, reloads).
func checkIndexes(t *testing.T, d *Daemon) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	peers, indexed := map[netip.Addr]int{}, 0
	for _, sa := range d.sas {
		if !d.idx.sas.Has(d.pairHash(sa.pair()), sa) || !sa.filed {
			t.Errorf("IKE SA %v (%v to %v) not filed under its endpoints", sa.localSPI(), sa.local, sa.remote)
		}
		if sa.stateShadow == stateDead {
			t.Errorf("IKE SA %v is dead and still in the daemon's map", sa.localSPI())
		}
		peers[sa.remote.Addr()]++
	}
	for range d.idx.sas.All() {
		indexed++
	}
	if indexed != len(d.sas) || !maps.Equal(peers, d.idx.peers) {
		t.Errorf("%d IKE SAs, %d in the pair index; peer counts %v, want %v", len(d.sas), indexed, d.idx.peers, peers)
	}
	entries, ids, sels := 0, 0, 0
	for name, tu := range d.tunnels {
		if !tu.filed || tu.filedPeer != tu.peer.Addr() {
			t.Errorf("tunnel %s: filed %v with peer %v, its peer is %v", name, tu.filed, tu.filedPeer, tu.peer)
		}
		for _, c := range tu.children {
			if d.childLocked(c.in) != c || d.childLocked(c.out) != c {
				t.Errorf("tunnel %s: child SA %v/%v not found by its SAIDs", name, c.in, c.out)
			}
		}
		hs := d.selHashes(tu.cfg)
		for _, h := range hs {
			if !d.idx.sels.Has(h, tu) {
				t.Errorf("tunnel %s not under its selectors' %x", name, h)
			}
		}
		sels += len(hs)
		ps := tu.endpoints(tu.peer.Addr())
		for _, p := range ps {
			if !d.idx.tunnels.Has(d.pairHash(p), tu) {
				t.Errorf("tunnel %s not under %v", name, p)
			}
		}
		entries += len(ps)
		if r := tu.cfg.RemoteID; !r.IsZero() {
			ids++
			if !d.idx.ids.Has(d.idHash(tu.cfg.Source, r), tu) {
				t.Errorf("tunnel %s not under its identity %v", name, r)
			}
		}
	}
	n, m, k := 0, 0, 0
	for range d.idx.sels.All() {
		k++
	}
	if k != sels {
		t.Errorf("selector index: %d entries, want %d", k, sels)
	}
	for range d.idx.tunnels.All() {
		n++
	}
	for range d.idx.ids.All() {
		m++
	}
	if n != entries || m != ids {
		t.Errorf("tunnel index: %d entries, want %d; identity index: %d, want %d", n, entries, m, ids)
	}
}

// at returns the names of the tunnels tunnelsAt yields.
func at(d *Daemon, local, remote netip.Addr, id ike.Identity) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var names []string
	for tu := range d.tunnelsAt(local, remote, id) {
		names = append(names, tu.cfg.Name)
	}
	slices.Sort(names)
	return names
}

// TestIndexesFollowReconfigure: a reload that changes a tunnel's
// destination, gives one a backup destination and a remote identity,
// changes only the selectors of a third and removes a fourth refiles them:
// the look-ups of a peer find exactly the tunnels the new configuration
// sends to it, and a child SA request finds a tunnel by its new selectors.
func TestIndexesFollowReconfigure(t *testing.T) {
	addrD := netip.MustParseAddr("192.0.2.4")
	c := pairConfig(clocktest.New(t0))
	c.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16"),
		pairTunnel(t, "t2", addrA, addrB, netA, netB, "esp-aes128-gcm16"),
		pairTunnel(t, "t4", addrA, addrB, netA, netB, "esp-aes128-gcm16"),
		pairTunnel(t, "t3", addrA, addrC, netA, netB, "esp-aes128-gcm16")}
	d, err := New(c, iketest.NewInstaller(1), iketest.NewWire(), iketest.NewListener())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := at(d, addrA, addrB, ike.Identity{}); !slices.Equal(got, []string{"t1", "t2", "t4"}) {
		t.Fatalf("tunnels to B: %v", got)
	}
	peer := ike.Identity{Kind: ike.IDFQDN, Name: "Peer.Example"}
	narrower := selector.FromPrefix(netip.MustParsePrefix("203.0.113.0/25"))
	c.Tunnels = slices.Clone(c.Tunnels[:3]) // the daemon keeps the old ones
	c.Tunnels[0].Destination = addrC
	c.Tunnels[1].BackupDestination, c.Tunnels[1].RemoteID = addrD, peer
	c.Tunnels[2].RemoteSelector = narrower
	if err := d.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, d)
	for _, x := range []struct {
		remote netip.Addr
		id     ike.Identity
		want   []string
	}{{addrB, ike.Identity{}, []string{"t2", "t4"}}, {addrC, ike.Identity{}, []string{"t1"}}, {addrD, ike.Identity{}, []string{"t2"}},
		{addrC, ike.Identity{Kind: ike.IDFQDN, Name: "peer.example"}, []string{"t1", "t2"}}} {
		if got := at(d, addrA, x.remote, x.id); !slices.Equal(got, x.want) {
			t.Errorf("tunnels to %v (%v): %v, want %v", x.remote, x.id, got, x.want)
		}
	}
	if got := at(d, addrB, addrA, peer); len(got) != 0 {
		t.Errorf("tunnels from another source: %v", got)
	}
	m := &Message{Payloads: []Payload{{Type: PayloadTSi, Body: tsPayload(netip.Addr{}, selector.Of(narrower))},
		{Type: PayloadTSr, Body: tsPayload(netip.Addr{}, selector.Of(selector.FromPrefix(netA)))}}}
	d.mu.Lock()
	got := d.childCandidates(addrA, addrB, ike.Identity{}, m)
	d.mu.Unlock()
	if len(got) != 1 || got[0].Name != "t4" {
		t.Errorf("a child SA request for t4's new selectors finds %d tunnels", len(got))
	}
}

// TestOnlySACounts: INITIAL_CONTACT's test, whether an IKE SA is the only
// one with its peer, counts the SAs of the peer's address from any local
// address, and forgets a destroyed one.
func TestOnlySACounts(t *testing.T) {
	d, err := New(pairConfig(clocktest.New(t0)), iketest.NewInstaller(1), iketest.NewWire(), iketest.NewListener())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	only := func(sa *ikeSA) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.onlySA(sa)
	}
	x := d.newIKESA(true, netip.AddrPortFrom(addrA, 500), netip.AddrPortFrom(addrB, 500), 0)
	if !only(x) {
		t.Fatal("the first SA with B is not the only one")
	}
	other := netip.MustParseAddr("192.0.2.9")
	y := d.newIKESA(true, netip.AddrPortFrom(other, 500), netip.AddrPortFrom(addrB, 500), 0)
	if only(x) || only(y) {
		t.Fatal("two SAs with B, from two local addresses, and one is the only one")
	}
	y.lock()
	y.setEndpoints(netip.AddrPortFrom(other, 4500), netip.AddrPortFrom(addrC, 4500))
	y.unlock()
	if !only(x) || !only(y) {
		t.Fatal("after one SA moved to another peer, the other is not the only one with B")
	}
	checkIndexes(t, d)
	y.lock()
	y.destroy("test")
	y.unlock()
	x.lock()
	x.setEndpoints(netip.AddrPortFrom(addrA, 4500), netip.AddrPortFrom(addrC, 4500))
	x.unlock()
	if !only(x) {
		t.Fatal("a destroyed SA still counts")
	}
	checkIndexes(t, d)
}
