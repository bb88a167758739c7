package v1

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/selector"
)

// TestSASizes keeps the per-tunnel structures within their allocation size
// classes (issue 13: memory per tunnel): an IKE SA within 568 bytes (the
// 576-byte class, as an object over 512 bytes with pointers carries an
// 8-byte header), a child SA within 240, a tunnel within 192. A field
// that crosses one costs the next class, 32 to 64 bytes a tunnel: move
// what only a setup or a rare case needs into a record made when needed
// (phase1Queue, tunnelHistory).
func TestSASizes(t *testing.T) {
	for _, x := range []struct {
		name      string
		size, max uintptr
	}{
		{"ikeSA", unsafe.Sizeof(ikeSA{}), 568},
		{"childSA", unsafe.Sizeof(childSA{}), 240},
		{"tunnel", unsafe.Sizeof(tunnel{}), 192},
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
