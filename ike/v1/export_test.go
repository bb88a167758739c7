package v1

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
)

// Issue 11: an IKE SA exported from one daemon and imported into a fresh
// one carries on, and its peer notices nothing: no new phase 1, DPD
// answered both ways, child SAs rekeyed on schedule, deletes both ways.

// handOver exports every IKE SA of old, makes a fresh daemon with cfg at
// old's address, gives it the IPsec SAs old's installer holds (as the
// line card resumes them), drops old silently (as if killed) and imports
// the records. It returns the new side.
func handOver(t *testing.T, w *sim, old *pairSide, cfg ike.Config) *pairSide {
	t.Helper()
	w.settle(t)
	states, err := old.d.Export(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) == 0 {
		t.Fatal("nothing exported")
	}
	for _, s := range states {
		if !old.d.CanImport(s) || s.Version != 1 || len(s.Tunnels) == 0 {
			t.Fatalf("record %d/%d for %v", s.Version, s.Format, s.Tunnels)
		}
	}
	nu := &pairSide{inst: iketest.NewInstaller(0x7000), lis: iketest.NewListener()}
	for id, sa := range old.inst.SAs() {
		sa.CipherKey, sa.AuthKey = sa.CipherKey.Clone(), sa.AuthKey.Clone()
		if err := nu.inst.AddSA(id, sa); err != nil {
			t.Fatal(err)
		}
	}
	old.d.Forget(nil)
	if st := old.d.Status(); len(st.IKESAs) != 0 || st.Tunnels[0].State != "down" {
		t.Fatalf("after Forget: %+v", st)
	}
	d, err := New(w.config(cfg), nu.inst, w, nu.lis)
	if err != nil {
		t.Fatal(err)
	}
	nu.d = d
	t.Cleanup(func() { d.Close() })
	w.Attach(addrA, d)
	if err := d.Import(states, ike.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range states {
		states[i].Zero()
	}
	return nu
}

// TestExportImportCarriesOn runs both roles: the daemon that moves
// initiated the IKE SA, or answered it.
func TestExportImportCarriesOn(t *testing.T) {
	t.Parallel()
	for _, aInitiates := range []bool{true, false} {
		name := "responder"
		if aInitiates {
			name = "initiator"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testExportImport(t, aInitiates)
		})
	}
}

func testExportImport(t *testing.T, aInitiates bool) {
	ca, cb := baseConfig(), baseConfig()
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")
	tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")
	ta.DPD, tb.DPD = idleDPD(2*time.Second), idleDPD(3*time.Second)
	ta.Lifetime = ipsec.Lifetime{Time: 10 * time.Minute}
	tb.Lifetime = ta.Lifetime
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
	a, b, w := newPair(t, ca, cb)
	if aInitiates {
		a.d.Acquire("t1")
	} else {
		b.d.Acquire("t1")
	}
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	w.sleep(t, 5*time.Second) // a DPD exchange or two before the move
	before := b.d.Status()
	if len(before.IKESAs) != 1 {
		t.Fatalf("B's IKE SAs before: %+v", before.IKESAs)
	}

	a2 := handOver(t, w, a, ca)
	st := a2.d.Status()
	if len(st.IKESAs) != 1 || st.IKESAs[0].ICookie != before.IKESAs[0].ICookie || st.IKESAs[0].RCookie != before.IKESAs[0].RCookie ||
		!st.IKESAs[0].Established || st.Tunnels[0].State != "up" {
		t.Fatalf("imported status %+v, B has %+v", st, before.IKESAs)
	}

	// DPD both ways: the new daemon's inquiries are answered by B, then
	// (an inquiry being a sign of life that restarts the other end's
	// idle timer, one end probes at a time) B's by the new daemon.
	acks, answered := a2.d.Status().Counters.DPDAcks, b.d.Status().Counters.DPDAnswered
	w.sleep(t, 10*time.Second)
	if c := a2.d.Status().Counters; c.DPDAcks < acks+2 || c.DPDPeersDead != 0 {
		t.Errorf("the new daemon's inquiries: %+v", c)
	}
	if c := b.d.Status().Counters; c.DPDAnswered < answered+2 {
		t.Errorf("B answered %d inquiries, had %d", c.DPDAnswered, answered)
	}
	ta.DPD, tb.DPD = idleDPD(time.Hour), idleDPD(2*time.Second)
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
	if err := a2.d.Reconfigure(ca); err != nil {
		t.Fatal(err)
	}
	if err := b.d.Reconfigure(cb); err != nil {
		t.Fatal(err)
	}
	acks, answered = b.d.Status().Counters.DPDAcks, a2.d.Status().Counters.DPDAnswered
	w.sleep(t, 10*time.Second)
	if c := b.d.Status().Counters; c.DPDAcks < acks+2 || c.DPDPeersDead != 0 {
		t.Errorf("B's inquiries: %+v", c)
	}
	if c := a2.d.Status().Counters; c.DPDAnswered < answered+2 {
		t.Errorf("the new daemon answered %d inquiries, had %d", c.DPDAnswered, answered)
	}

	// The child SA is rekeyed at 80-90 % of its 10 minutes, on the same
	// IKE SA; B sees no new phase 1.
	rekeys := tunnelStatus(t, b.d, "t1").Rekeys
	w.waitUntil(t, 10*time.Minute, "child SA rekeyed", func() bool { return tunnelStatus(t, b.d, "t1").Rekeys > rekeys })
	checkKeysMatch(t, a2, b, "t1", "t1")
	after := b.d.Status()
	if len(after.IKESAs) != 1 || after.IKESAs[0].ICookie != before.IKESAs[0].ICookie || after.Counters.Phase1Established != before.Counters.Phase1Established {
		t.Errorf("B's IKE SAs after: %+v (phase 1s %d, were %d)", after.IKESAs, after.Counters.Phase1Established, before.Counters.Phase1Established)
	}
	for _, e := range b.lis.Events() {
		if e.Kind != "up" {
			t.Errorf("B's event %v", e)
		}
	}

	// B going away deletes the tunnel on the new daemon: its delete is
	// read with the imported keys.
	b.d.Close()
	w.waitEvent(t, a2.lis, "down", "t1", 5*time.Second)
}

// TestExportImportDeleteFromImporter: the imported daemon's deletes reach
// the peer.
func TestExportImportDeleteFromImporter(t *testing.T) {
	t.Parallel()
	ca, cb := baseConfig(), baseConfig()
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	a, b, w := newPair(t, ca, cb)
	a.d.Acquire("t1")
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	a2 := handOver(t, w, a, ca)
	_, _, ids := a2.inst.Tunnel("t1")
	a2.d.Expire(ids[0], true)
	w.waitEvent(t, a2.lis, "down", "t1", 5*time.Second)
	w.waitEvent(t, b.lis, "down", "t1", 5*time.Second)
	if n := len(b.inst.SAs()); n != 0 {
		t.Errorf("%d SAs left on B", n)
	}
}

// TestImportWithoutSAs: a child SA whose IPsec SAs the installer does not
// hold is left out (the tunnel stays down until it negotiates); a
// malformed or foreign record is refused with ErrImport; a record never
// holds the IKE SA's keys in the clear beside it.
func TestImportWithoutSAs(t *testing.T) {
	t.Parallel()
	ca, cb := baseConfig(), baseConfig()
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	a, b, w := newPair(t, ca, cb)
	a.d.Acquire("t1")
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	w.settle(t)
	states, err := a.d.Export(func(name string) bool { return name == "t1" })
	if err != nil || len(states) != 1 {
		t.Fatalf("export: %v, %d records", err, len(states))
	}
	if none, _ := a.d.Export(func(string) bool { return false }); len(none) != 0 {
		t.Errorf("%d records for no tunnel", len(none))
	}
	fresh := &pairSide{inst: iketest.NewInstaller(0x7000), lis: iketest.NewListener()}
	d, err := New(w.config(ca), fresh.inst, w, fresh.lis)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	bad := []ike.SAState{
		{Version: 2, Format: exportFormat, Data: states[0].Data},
		{Version: 1, Format: exportFormat + 1, Data: states[0].Data},
		{Version: 1, Format: exportFormat, Data: states[0].Data[:len(states[0].Data)-3]},
		{Version: 1, Format: exportFormat, Data: append(bytes.Clone(states[0].Data), 0)},
	}
	for i, s := range bad {
		if err := d.Import([]ike.SAState{s}, ike.ImportOptions{}); !errors.Is(err, ike.ErrImport) {
			t.Errorf("bad record %d: %v", i, err)
		}
	}
	if err := d.Import(states, ike.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	st := d.Status()
	if len(st.IKESAs) != 1 || st.Tunnels[0].State != "down" {
		t.Errorf("import without the IPsec SAs: %+v", st)
	}
	// Imported twice: still one IKE SA.
	if err := d.Import(states, ike.ImportOptions{}); err != nil || len(d.Status().IKESAs) != 1 {
		t.Errorf("second import: %v, %+v", err, d.Status().IKESAs)
	}
}

// FuzzIKESARecord: a record that does not decode is refused with an
// error, never a panic.
func FuzzIKESARecord(f *testing.F) {
	f.Add([]byte{}, uint8(1))
	f.Add([]byte{}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		im, err := readIKESA(data, int(format))
		if err == nil {
			im.zero()
		} else if !errors.Is(err, ike.ErrImport) {
			t.Fatalf("error %v does not wrap ErrImport", err)
		}
	})
}
