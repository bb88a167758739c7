package v2

import (
	"net/netip"
	"testing"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/selector"
)

// TestChildCandidatesAgree: the selector index's short cut for a
// CREATE_CHILD_SA request picks the tunnel and selectors chooseTunnel
// picks from the whole ordered list of the peer's tunnels, whatever the
// request: the tunnels' own selectors with and without a packet's hint (a
// named tunnel before an unnamed one, the lower name first among equals),
// a narrower or a wider request, selectors of no tunnel, and a peer
// without the identity.
func TestChildCandidatesAgree(t *testing.T) {
	sub := func(s string) selector.Selector { return selector.FromPrefix(netip.MustParsePrefix(s)) }
	x, y, z := sub("198.51.100.0/24"), sub("203.0.113.0/24"), sub("203.0.113.128/25")
	peer := ike.Identity{Kind: ike.IDFQDN, Name: "peer.example"}
	mk := func(name string, rs, ls selector.Selector, id ike.Identity) ike.Tunnel {
		tu := pairTunnel(t, name, addrA, addrB, netA, netB, "esp-aes128-gcm16")
		tu.RemoteSelector, tu.LocalSelector, tu.RemoteID = rs, ls, id
		return tu
	}
	c := pairConfig(clocktest.New(t0))
	c.Tunnels = []ike.Tunnel{mk("b", x, y, ike.Identity{}), mk("a", x, y, ike.Identity{}), mk("z", x, y, peer),
		mk("c", y, x, ike.Identity{}), mk("d", x, z, ike.Identity{})}
	d, err := New(c, iketest.NewInstaller(1), iketest.NewWire(), iketest.NewListener())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	checkIndexes(t, d)
	host := func(s selector.Selector) netip.Addr { return s.From.Next() }
	for _, r := range []struct {
		name       string
		tsi, tsr   selector.Set
		hintI      netip.Addr
		hintR      netip.Addr
		id         ike.Identity
		wantTunnel string
	}{
		{"exact, named first", selector.Of(x), selector.Of(y), netip.Addr{}, netip.Addr{}, peer, "z"},
		{"exact, lower name first", selector.Of(x), selector.Of(y), netip.Addr{}, netip.Addr{}, ike.Identity{}, "a"},
		{"exact with hints", selector.Of(x), selector.Of(y), host(x), host(y), peer, "z"},
		{"exact, reversed", selector.Of(y), selector.Of(x), netip.Addr{}, netip.Addr{}, peer, "c"},
		{"narrower", selector.Of(z), selector.Of(x), netip.Addr{}, netip.Addr{}, ike.Identity{}, "c"},
		{"exact, other tunnel", selector.Of(x), selector.Of(z), netip.Addr{}, netip.Addr{}, ike.Identity{}, "d"},
		{"wider", selector.Of(sub("198.51.0.0/16")), selector.Of(y), netip.Addr{}, netip.Addr{}, ike.Identity{}, "a"},
		{"two selectors", selector.Set{x, y}, selector.Of(y), netip.Addr{}, netip.Addr{}, ike.Identity{}, "a"},
		{"no tunnel", selector.Of(sub("192.0.2.0/24")), selector.Of(y), netip.Addr{}, netip.Addr{}, ike.Identity{}, ""},
	} {
		m := &Message{Payloads: []Payload{{Type: PayloadTSi, Body: tsPayload(r.hintI, r.tsi)}, {Type: PayloadTSr, Body: tsPayload(r.hintR, r.tsr)}}}
		var tsi, tsr TS
		if _, err := m.decode(PayloadTSi, &tsi); err != nil {
			t.Fatal(err)
		}
		if _, err := m.decode(PayloadTSr, &tsr); err != nil {
			t.Fatal(err)
		}
		d.mu.Lock()
		all := d.tunnelsFor(addrA, addrB, r.id)
		short := d.childCandidates(addrA, addrB, r.id, m)
		d.mu.Unlock()
		want, wr, wl := chooseTunnel(all, tsi.Selectors, tsr.Selectors)
		got, gr, gl := chooseTunnel(short, tsi.Selectors, tsr.Selectors)
		name := func(t *ike.Tunnel) string {
			if t == nil {
				return ""
			}
			return t.Name
		}
		if name(want) != r.wantTunnel {
			t.Errorf("%s: the whole list gives %q, the case expects %q", r.name, name(want), r.wantTunnel)
		}
		if exact := r.name[:5] == "exact"; exact != (len(short) == 1) {
			t.Errorf("%s: %d candidates by the short cut", r.name, len(short))
		}
		if name(got) != name(want) || !gr.Equal(wr) || !gl.Equal(wl) {
			t.Errorf("%s: the short cut gives %q %v %v, the whole list %q %v %v", r.name, name(got), gr, gl, name(want), wr, wl)
		}
	}
}
