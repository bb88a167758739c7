package mux

import (
	"errors"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
)

// TestExportImportBothVersions: the multiplexer exports each version's IKE
// SA, a fresh multiplexer imports each into the daemon of its version (the
// tunnels come up without a negotiation), and an expire of an imported
// child SA reaches the daemon that holds it.
func TestExportImportBothVersions(t *testing.T) {
	w := iketest.NewWire()
	t.Cleanup(w.Close)
	ca := config(tunnels(t, addrA, addrB, false))
	a := newSide(t, w, ca, addrA, 0x1000)
	b := newSide(t, w, config(tunnels(t, addrB, addrA, true)), addrB, 0x2000)
	a.m.Acquire("v1")
	a.m.Acquire("v2")
	for _, s := range []*side{a, b} {
		waitUp(t, s, "v1")
		waitUp(t, s, "v2")
	}
	states, err := a.m.Export(nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint8][]string{}
	for _, s := range states {
		if !a.m.CanImport(s) {
			t.Errorf("the multiplexer refuses its own IKEv%d record", s.Version)
		}
		got[s.Version] = s.Tunnels
	}
	if len(states) != 2 || len(got[1]) != 1 || got[1][0] != "v1" || len(got[2]) != 1 || got[2][0] != "v2" {
		t.Fatalf("exported %v", got)
	}
	nu := &side{inst: iketest.NewInstaller(0x7000), lis: iketest.NewListener()}
	for id, sa := range a.inst.SAs() {
		sa.CipherKey, sa.AuthKey = sa.CipherKey.Clone(), sa.AuthKey.Clone()
		if err := nu.inst.AddSA(id, sa); err != nil {
			t.Fatal(err)
		}
	}
	a.m.Forget(nil)
	if st := a.m.Status(); len(st.IKESAs) != 0 {
		t.Fatalf("after Forget: %+v", st.IKESAs)
	}
	m, err := NewDaemon(ca, nu.inst, w, nu.lis)
	if err != nil {
		t.Fatal(err)
	}
	nu.m = m.(*Daemon)
	t.Cleanup(func() { nu.m.Close() })
	w.Attach(addrA, nu.m)
	if err := nu.m.Import(states, ike.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUp(t, nu, "v1")
	waitUp(t, nu, "v2")
	if st := nu.m.Status(); len(st.IKESAs) != 2 || st.Counters.Phase1Established != 0 {
		t.Fatalf("imported: %+v", st)
	}
	var out ipsec.SAID
	for id, sa := range nu.inst.SAs() {
		if sa.Tunnel == "v2" && !sa.Inbound {
			out = id
		}
	}
	nu.m.Expire(out, false)
	for end := time.Now().Add(10 * time.Second); nu.m.Status().ByVersion[2].Rekeys == 0; {
		if time.Now().After(end) {
			t.Fatalf("no IKEv2 rekey of an imported child SA: %+v", nu.m.Status().ByVersion[2])
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A record of a version without a daemon is refused.
	v2only := config(tunnels(t, addrA, addrB, false)[1:])
	only, err := NewDaemon(v2only, iketest.NewInstaller(0x9000), w, iketest.NewListener())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { only.Close() })
	if err := only.(*Daemon).Import(states[:1], ike.ImportOptions{}); states[0].Version == 1 && !errors.Is(err, ike.ErrImport) {
		t.Errorf("an IKEv1 record into a multiplexer without IKEv1: %v", err)
	}
	for i := range states {
		states[i].Zero()
	}
}
