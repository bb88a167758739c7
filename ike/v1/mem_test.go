package v1

import (
	"hash/maphash"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
)

// TestSASizes keeps the per-tunnel structures within their allocation size
// classes (issue 13: memory per tunnel): an IKE SA within 512 bytes (an
// object over 512 bytes with pointers carries an 8-byte header and takes
// the 576-byte class), a child SA within 224, a tunnel within 176. A field
// that crosses one costs the next class, 32 to 64 bytes a tunnel: move
// what only a setup or a rare case needs into a record made when needed
// (phase1Queue, childPending, tunnelHistory).
func TestSASizes(t *testing.T) {
	for _, x := range []struct {
		name      string
		size, max uintptr
	}{
		{"ikeSA", unsafe.Sizeof(ikeSA{}), 512},
		{"childSA", unsafe.Sizeof(childSA{}), 224},
		{"tunnel", unsafe.Sizeof(tunnel{}), 176},
		{"reply", unsafe.Sizeof(reply{}), 48},
	} {
		if x.size > x.max {
			t.Errorf("%s is %d bytes, over %d", x.name, x.size, x.max)
		}
	}
}

// TestChildSelectorsAcrossReconfigure: a child SA reads the selectors it
// was negotiated with from its tunnel's configuration while they are the
// same, and keeps its own copy once a reconfiguration changes them.
func TestChildSelectorsAcrossReconfigure(t *testing.T) {
	ca, cb := baseConfig(), baseConfig()
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	a, b, w := newPair(t, ca, cb)
	a.d.Acquire("t1")
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	child := func() *childSA {
		a.d.mu.Lock()
		defer a.d.mu.Unlock()
		return a.d.tunnels["t1"].children[0]
	}
	if c := child(); c.own != nil || c.local() != selector.FromPrefix(netA) || c.remote() != selector.FromPrefix(netB) {
		t.Fatalf("child's selectors %v %v, own copy %v", c.local(), c.remote(), c.own)
	}
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netip.MustParsePrefix("198.51.100.0/25"), netB, "esp-aes128-hmac-sha")}
	if err := a.d.Reconfigure(ca); err != nil {
		t.Fatal(err)
	}
	st := a.d.Status().Tunnels[0]
	if len(st.Children) != 1 || !reflect.DeepEqual(st.Children[0].Local, selector.Of(selector.FromPrefix(netA))) ||
		!reflect.DeepEqual(st.Children[0].Remote, selector.Of(selector.FromPrefix(netB))) {
		t.Fatalf("after reconfigure: %+v", st.Children)
	}
	if c := child(); c.own == nil {
		t.Error("the child kept no copy of its selectors")
	}
}

// TestPairIndexSets: a pair's IKE SAs and child SAs share its entry, go to
// sets from two of a kind on and back to one, and the entry goes with the
// pair's last SA.
func TestPairIndexSets(t *testing.T) {
	d := &Daemon{sas: map[saKey]*ikeSA{}, seed: maphash.MakeSeed()}
	local, remote := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	k := peerKey{local, remote}
	ends := func(n int) (netip.AddrPort, netip.AddrPort) {
		return netip.AddrPortFrom(local, uint16(n)), netip.AddrPortFrom(remote, 500)
	}
	var sas []*ikeSA
	var children []*childSA
	for i := range 3 {
		l, r := ends(500 + i)
		sa := &ikeSA{icookie: Cookie{byte(i + 1)}, local: l, remote: r}
		c := &childSA{in: ipsec.SAID{Dst: local, SPI: uint32(0x100 + i)}, out: ipsec.SAID{Dst: remote, SPI: uint32(0x200 + i)}}
		sas, children = append(sas, sa), append(children, c)
	}
	want := func(nsa, nchild int) {
		t.Helper()
		gotSA, gotChild := slices.Collect(d.pairs.sasOf(k)), slices.Collect(d.pairs.childrenOf(k))
		if len(gotSA) != nsa || len(gotChild) != nchild {
			t.Fatalf("pair holds %d IKE SAs and %d children, want %d and %d", len(gotSA), len(gotChild), nsa, nchild)
		}
		for _, sa := range gotSA {
			if !slices.Contains(sas, sa) {
				t.Fatalf("unknown IKE SA %p", sa)
			}
		}
	}
	d.putSALocked(sas[0])
	d.putChildLocked(children[0])
	d.putChildLocked(children[0]) // again: no change
	want(1, 1)
	if e := d.pairs.m[d.pairs.key(k)]; e.more != nil {
		t.Errorf("one SA of each kind made sets: %+v", e.more)
	}
	d.putSALocked(sas[1])
	d.putSALocked(sas[2])
	d.putChildLocked(children[1])
	want(3, 2)
	d.deleteSALocked(sas[0])
	d.deleteSALocked(sas[2])
	want(1, 2)
	if got := slices.Collect(d.pairs.sasOf(k)); got[0] != sas[1] {
		t.Errorf("pair's IKE SA %p, want %p", got[0], sas[1])
	}
	d.deleteChildLocked(children[0])
	if e := d.pairs.m[d.pairs.key(k)]; e.more != nil || e.child != children[1] {
		t.Errorf("one of each left: entry %+v", e)
	}
	d.deleteSALocked(sas[1])
	d.deleteChildLocked(children[1])
	if len(d.pairs.m) != 0 || len(d.sas) != 0 || d.children.Keys() != 0 {
		t.Errorf("left %d pairs, %d IKE SAs, %d child SAIDs", len(d.pairs.m), len(d.sas), d.children.Keys())
	}
}

// all returns every IKE SA and child SA in the index.
func (x *pairIndex) all() (sas []*ikeSA, children []*childSA) {
	for _, e := range x.m {
		var manySAs map[*ikeSA]struct{}
		var manyChildren map[*childSA]struct{}
		if e.more != nil {
			manySAs, manyChildren = e.more.sas, e.more.children
		}
		sas = slices.AppendSeq(sas, members(e.sa, manySAs))
		children = slices.AppendSeq(children, members(e.child, manyChildren))
	}
	return sas, children
}

// TestPairIndexCollision: two pairs under one hash share an entry, and
// each pair's look-up yields its own SAs only.
func TestPairIndexCollision(t *testing.T) {
	d := &Daemon{sas: map[saKey]*ikeSA{}, seed: maphash.MakeSeed()}
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	sa1 := &ikeSA{icookie: Cookie{1}, local: netip.AddrPortFrom(a, 500), remote: netip.AddrPortFrom(b, 500)}
	sa2 := &ikeSA{icookie: Cookie{2}, local: netip.AddrPortFrom(a, 500), remote: netip.AddrPortFrom(c, 500)}
	// Both pairs file under one key, as a collision of their hashes would.
	k := d.pairs.key(sa1.peer())
	e := pairEntry{more: &pairSets{sas: map[*ikeSA]struct{}{sa1: {}, sa2: {}}}}
	d.pairs.store(k, e)
	d.pairs.m[d.pairs.key(sa2.peer())] = e
	for _, sa := range []*ikeSA{sa1, sa2} {
		if got := slices.Collect(d.pairs.sasOf(sa.peer())); len(got) != 1 || got[0] != sa {
			t.Errorf("pair %v yields %v, want only %p", sa.peer(), got, sa)
		}
	}
}
