package mux

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// Two multiplexers over an in-memory wire, each with an IKEv1 tunnel and
// an IKEv2 tunnel to the other: both versions on one address and port.

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
)

// tunnels returns an IKEv1 tunnel v1 and an IKEv2 tunnel v2 from local to
// remote, with selectors of their own.
func tunnels(t *testing.T, local, remote netip.Addr, mirror bool) []ike.Tunnel {
	tr, _ := transform.Lookup("esp-aes128-gcm16")
	nets := [2][2]string{{"198.51.100.0/25", "203.0.113.0/25"}, {"198.51.100.128/25", "203.0.113.128/25"}}
	var out []ike.Tunnel
	for i, name := range []string{"v1", "v2"} {
		l, r := netip.MustParsePrefix(nets[i][0]), netip.MustParsePrefix(nets[i][1])
		if mirror {
			l, r = r, l
		}
		out = append(out, ike.Tunnel{Name: name, Version: i + 1, Source: local, Destination: remote,
			TransformSet: []transform.Transform{tr}, LocalSelector: selector.FromPrefix(l), RemoteSelector: selector.FromPrefix(r)})
	}
	return out
}

// config has an IKEv2-only policy first (AES-GCM), then one both can use.
func config(ts []ike.Tunnel) ike.Config {
	return ike.Config{
		Policies: []ike.Policy{
			{Encryption: ike.EncAES256GCM, PRF: ike.HashSHA384, Auth: ike.AuthPSK, Group: 20},
			{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14},
		},
		PreSharedKeys: []ike.PreSharedKey{{Peer: addrA.String(), Key: ipsec.Key("mux-secret")}, {Peer: addrB.String(), Key: ipsec.Key("mux-secret")}},
		Retransmit:    ike.Retransmit{Timeout: 300 * time.Millisecond, Base: 1.5, Tries: 4},
		Tunnels:       ts,
	}
}

type side struct {
	m    *Daemon
	inst *iketest.Installer
	lis  *iketest.Listener
}

func newSide(t *testing.T, w *iketest.Wire, c ike.Config, addr netip.Addr, base uint32) *side {
	t.Helper()
	s := &side{inst: iketest.NewInstaller(base), lis: iketest.NewListener()}
	d, err := NewDaemon(c, s.inst, w, s.lis)
	if err != nil {
		t.Fatal(err)
	}
	s.m = d.(*Daemon)
	w.Attach(addr, s.m)
	t.Cleanup(func() { s.m.Close() })
	return s
}

func waitUp(t *testing.T, s *side, tunnel string) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); ; {
		for _, e := range s.lis.Events() {
			if e.Kind == "up" && e.Tunnel == tunnel {
				return
			}
		}
		if time.Now().After(end) {
			t.Fatalf("%s not up; events %v", tunnel, s.lis.Events())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBothVersions: each tunnel comes up with its own version over one
// endpoint pair; Status says which IKE SA is which, with each version's
// counters apart; a soft expire of an IKEv2 child SA reaches the IKEv2
// daemon only, which rekeys it.
func TestBothVersions(t *testing.T) {
	w := iketest.NewWire()
	t.Cleanup(w.Close)
	a := newSide(t, w, config(tunnels(t, addrA, addrB, false)), addrA, 0x1000)
	b := newSide(t, w, config(tunnels(t, addrB, addrA, true)), addrB, 0x2000)
	a.m.Acquire("v1")
	a.m.Acquire("v2")
	for _, s := range []*side{a, b} {
		waitUp(t, s, "v1")
		waitUp(t, s, "v2")
	}
	st := a.m.Status()
	if len(st.IKESAs) != 2 || len(st.Tunnels) != 2 || st.Tunnels[0].Name != "v1" || st.Tunnels[1].Name != "v2" {
		t.Fatalf("status: %+v", st)
	}
	versions := map[int]ike.IKESAStatus{}
	for _, sa := range st.IKESAs {
		versions[sa.Version] = sa
	}
	if versions[1].Policy.Encryption != ike.EncAES128 || versions[2].Policy.Encryption != ike.EncAES256GCM {
		t.Errorf("IKEv1 SA %v, IKEv2 SA %v: want aes128 for IKEv1 (GCM is IKEv2 only), aes256-gcm for IKEv2",
			versions[1].Policy, versions[2].Policy)
	}
	if st.ByVersion[1].Phase1Established != 1 || st.ByVersion[2].Phase1Established != 1 || st.Counters.Phase1Established != 2 {
		t.Errorf("phase 1 established by version %d/%d, total %d: want 1, 1, 2",
			st.ByVersion[1].Phase1Established, st.ByVersion[2].Phase1Established, st.Counters.Phase1Established)
	}
	// A soft expire of v2's outbound SA: IKEv2 rekeys the child.
	var out ipsec.SAID
	for id, sa := range a.inst.SAs() {
		if sa.Tunnel == "v2" && !sa.Inbound {
			out = id
		}
	}
	a.m.Expire(out, false)
	for end := time.Now().Add(10 * time.Second); a.m.Status().ByVersion[2].Rekeys == 0; {
		if time.Now().After(end) {
			t.Fatalf("no IKEv2 rekey after a soft expire: %+v", a.m.Status().ByVersion[2])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := a.m.Status().ByVersion[1].Rekeys; n != 0 {
		t.Errorf("IKEv1 counted %d rekeys for an IKEv2 SA's expire", n)
	}
}

// TestRefused: what the multiplexer refuses is counted: a datagram too
// short for an IKE header, one of major version 3, one of a version no
// tunnel uses.
func TestRefused(t *testing.T) {
	w := iketest.NewWire()
	t.Cleanup(w.Close)
	ts := tunnels(t, addrA, addrB, false)[:1] // IKEv1 only
	a := newSide(t, w, config(ts), addrA, 0x1000)
	if a.m.daemon(2) != nil {
		t.Fatal("an IKEv2 daemon runs without an IKEv2 tunnel")
	}
	local, remote := netip.AddrPortFrom(addrA, 500), netip.AddrPortFrom(addrB, 500)
	hdr := func(version byte) []byte {
		b := make([]byte, headerSize)
		b[versionOctet] = version
		return b
	}
	a.m.Receive(local, remote, []byte{0xff}) // a NAT-T keepalive: not counted
	a.m.Receive(local, remote, make([]byte, 10))
	a.m.Receive(local, remote, hdr(0x30))
	a.m.Receive(local, remote, hdr(0x20))
	st := a.m.Status()
	if st.Counters.Received != 3 || st.Counters.Malformed != 2 || st.ByVersion[2].Dropped != 1 || st.ByVersion[2].Received != 1 {
		t.Errorf("counters %+v, IKEv2 %+v: want 3 received, 2 malformed, 1 IKEv2 dropped", st.Counters, st.ByVersion[2])
	}
}

// TestReconfigure: a version's daemon starts with its first tunnel and
// closes with its last; a configuration whose IKEv2 tunnel has no policy
// it can negotiate is refused and changes nothing.
func TestReconfigure(t *testing.T) {
	w := iketest.NewWire()
	t.Cleanup(w.Close)
	all := tunnels(t, addrA, addrB, false)
	a := newSide(t, w, config(all[:1]), addrA, 0x1000)
	if err := a.m.Reconfigure(config(all)); err != nil {
		t.Fatal(err)
	}
	if a.m.daemon(1) == nil || a.m.daemon(2) == nil {
		t.Fatal("both daemons should run")
	}
	bad := config(all)
	bad.Policies = []ike.Policy{{Encryption: ike.EncDES, Hash: ike.HashMD5, Auth: ike.AuthPSK, Group: 2}}
	err := a.m.Reconfigure(bad)
	if err == nil || !strings.Contains(err.Error(), "IKEv2") {
		t.Fatalf("a DES-only configuration for an IKEv2 tunnel: %v", err)
	}
	if err := a.m.Reconfigure(config(all[1:])); err != nil {
		t.Fatal(err)
	}
	if a.m.daemon(1) != nil || a.m.daemon(2) == nil {
		t.Fatal("the IKEv1 daemon should be closed, the IKEv2 one run")
	}
	a.m.Acquire("v1") // a tunnel gone: nothing happens
}
