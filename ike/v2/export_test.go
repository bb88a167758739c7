package v2

import (
	"errors"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
)

// Issue 11: an IKEv2 SA exported from one daemon and imported into a
// fresh one carries on, and its peer notices nothing: no new IKE SA,
// liveness checks answered both ways, a child SA and the IKE SA rekeyed on
// schedule, message IDs in step although both ends moved on after the
// record, deletes both ways.

// handOver exports old's IKE SAs, lets after run (the old daemon still
// alive: exchanges the record does not know of), makes a fresh daemon with
// cfg, gives it the IPsec SAs old's installer holds (as the line card
// resumes them), drops old silently (as if killed), attaches the new one
// at addrA and imports the records.
func handOver(t *testing.T, p *pair, cfg ike.Config, after func()) *side {
	t.Helper()
	states, err := p.a.d.Export(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || !p.a.d.CanImport(states[0]) || states[0].Version != 2 || len(states[0].Tunnels) != 1 {
		t.Fatalf("exported %+v", states)
	}
	if after != nil {
		after()
	}
	nu := &side{inst: iketest.NewInstaller(0x7000), lis: iketest.NewListener()}
	for id, sa := range p.a.inst.SAs() {
		sa.CipherKey, sa.AuthKey = sa.CipherKey.Clone(), sa.AuthKey.Clone()
		if err := nu.inst.AddSA(id, sa); err != nil {
			t.Fatal(err)
		}
	}
	p.a.d.Forget(nil)
	if st := p.a.d.Status(); len(st.IKESAs) != 0 || st.Tunnels[0].State != "down" {
		t.Fatalf("after Forget: %+v", st)
	}
	if n := len(p.a.inst.SAs()); n != 2 {
		t.Fatalf("Forget touched the installer: %d SAs left", n)
	}
	cfg.Clock = p.clk
	d, err := New(cfg, nu.inst, p.w, nu.lis)
	if err != nil {
		t.Fatal(err)
	}
	nu.d = d
	t.Cleanup(func() { d.Close() })
	p.w.Attach(addrA, d)
	if err := d.Import(states, ike.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range states {
		states[i].Zero()
	}
	waitEvent(t, nu.lis, "up", "t1")
	checkIndexes(t, p.a.d) // Forget's
	checkIndexes(t, d)     // the imported SAs and tunnels
	return nu
}

func TestExportImportCarriesOn(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ca.Policies[0].Lifetime, cb.Policies[0].Lifetime = time.Hour, 2*time.Hour
	dpd := func(idle time.Duration) *ipsec.DPD {
		return &ipsec.DPD{Enabled: true, Sent: idle, Silent: idle, Idle: idle, RetryInterval: 2 * time.Second, Retries: 3}
	}
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")
	tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")
	ta.DPD, tb.DPD = dpd(time.Hour), dpd(20*time.Second)
	ta.Lifetime, tb.Lifetime = ipsec.Lifetime{Time: 20 * time.Minute}, ipsec.Lifetime{Time: 40 * time.Minute}
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	before := p.b.d.Status()
	if len(before.IKESAs) != 1 {
		t.Fatalf("B's IKE SAs: %+v", before.IKESAs)
	}

	// After the record, both ends make an exchange the record does not
	// know of: B a liveness check (the peer's next request is past what
	// the record expects), A an INFORMATIONAL of its own (the moved end's
	// first request reuses an ID the peer has answered, and its first
	// exchange, a CREATE_CHILD_SA, gets that answer from the peer's cache).
	a2 := handOver(t, p, ca, func() {
		answered := p.a.d.Status().Counters.DPDAnswered
		p.advance(t, 25*time.Second)
		if n := p.a.d.Status().Counters.DPDAnswered; n <= answered {
			t.Fatalf("B sent no liveness check after the record")
		}
		p.a.d.mu.Lock()
		var sa *ikeSA
		for _, x := range p.a.d.sas {
			sa = x
		}
		p.a.d.mu.Unlock()
		answered = p.b.d.Status().Counters.DPDAnswered
		sa.lock()
		sa.request(&request{exchange: Informational, build: func(*ikeSA) ([]Payload, error) { return nil, nil },
			onResponse: func(*ikeSA, *Message) {}, onTimeout: func(*ikeSA) {}})
		sa.unlock()
		p.advance(t, time.Second)
		if n := p.b.d.Status().Counters.DPDAnswered; n <= answered {
			t.Fatalf("B answered no INFORMATIONAL of A after the record")
		}
	})
	p.a = a2
	st := a2.d.Status()
	if len(st.IKESAs) != 1 || st.IKESAs[0].ICookie != before.IKESAs[0].ICookie || st.IKESAs[0].RCookie != before.IKESAs[0].RCookie ||
		!st.IKESAs[0].Established || st.Tunnels[0].State != "up" {
		t.Fatalf("imported status %+v, B has %+v", st, before.IKESAs)
	}

	// B's liveness checks (its idle time is the shorter) are answered by
	// the moved end.
	answered := a2.d.Status().Counters.DPDAnswered
	p.advance(t, 3*time.Minute)
	if c := a2.d.Status().Counters; c.DPDAnswered < answered+3 || c.DPDPeersDead != 0 {
		t.Errorf("the new daemon's liveness: %+v", c)
	}
	if c := p.b.d.Status().Counters; c.DPDPeersDead != 0 {
		t.Errorf("B declared the moved end dead: %+v", c)
	}

	// The child SA rekeys at 80-90 % of its 20 minutes and the IKE SA at
	// 80-90 % of its hour, both on the moved end, with the keys agreeing;
	// B never sees a new IKE_SA_INIT.
	p.advance(t, 20*time.Minute)
	if n := tunnelStatus(t, p.b.d, "t1").Rekeys; n < 1 {
		t.Errorf("child SA not rekeyed: %d rekeys", n)
	}
	checkKeysMatch(t, a2, p.b, "t1", "t1")
	p.advance(t, 40*time.Minute)
	after := p.b.d.Status()
	if after.Counters.IKESARekeys != 1 || after.Counters.Phase1Established != before.Counters.Phase1Established ||
		len(after.IKESAs) != 1 {
		t.Errorf("B after: %d IKE SA rekeys, %d IKE SAs set up (were %d), IKE SAs %+v", after.Counters.IKESARekeys,
			after.Counters.Phase1Established, before.Counters.Phase1Established, after.IKESAs)
	}
	for _, e := range p.b.lis.Events() {
		if e.Kind != "up" {
			t.Errorf("B's event %v", e)
		}
	}

	// B going away deletes the tunnel on the moved end.
	p.b.d.Close()
	waitEvent(t, a2.lis, "down", "t1")
}

// tunnelStatus returns a daemon's status of one tunnel.
func tunnelStatus(t *testing.T, d *Daemon, name string) ike.TunnelStatus {
	t.Helper()
	for _, s := range d.Status().Tunnels {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no tunnel %s", name)
	return ike.TunnelStatus{}
}

// TestImportRefuses: a foreign, truncated or tampered record is refused
// with ErrImport; a child SA the installer does not hold is left out.
func TestImportRefuses(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(t0)
	ca, cb := pairConfig(clk), pairConfig(clk)
	ca.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}
	cb.Tunnels = []ike.Tunnel{pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	states, err := p.a.d.Export(func(name string) bool { return name == "t1" })
	if err != nil || len(states) != 1 {
		t.Fatalf("export: %v, %d records", err, len(states))
	}
	if none, _ := p.a.d.Export(func(string) bool { return false }); len(none) != 0 {
		t.Errorf("%d records for no tunnel", len(none))
	}
	fresh := &side{inst: iketest.NewInstaller(0x7000), lis: iketest.NewListener()}
	ca.Clock = clk
	d, err := New(ca, fresh.inst, p.w, fresh.lis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	good := states[0]
	for name, s := range map[string]ike.SAState{
		"IKEv1":     {Version: 1, Format: exportFormat, Data: good.Data},
		"format":    {Version: 2, Format: exportFormat + 1, Data: good.Data},
		"truncated": {Version: 2, Format: exportFormat, Data: good.Data[:len(good.Data)/2]},
		"trailing":  {Version: 2, Format: exportFormat, Data: append(good.Data.Clone(), 0)},
	} {
		if err := d.Import([]ike.SAState{s}, ike.ImportOptions{}); !errors.Is(err, ike.ErrImport) && err == nil {
			t.Errorf("%s record imported", name)
		}
	}
	if st := d.Status(); len(st.IKESAs) != 0 {
		t.Fatalf("refused records left IKE SAs: %+v", st.IKESAs)
	}
	// The installer holds no SA: the IKE SA comes, its child does not.
	if err := d.Import(states, ike.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := d.Status(); len(st.IKESAs) != 1 || st.Tunnels[0].State == "up" {
		t.Fatalf("imported without SAs: %+v", st)
	}
	// The same record again is not a second IKE SA.
	if err := d.Import(states, ike.ImportOptions{}); err != nil || len(d.Status().IKESAs) != 1 {
		t.Fatalf("imported twice: %v, %+v", err, d.Status().IKESAs)
	}
}
