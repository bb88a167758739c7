package ism

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/ism/operator"
)

// The DPD and failover lab: ISM in process, running in its own namespace
// (NSISM, which is also its VR), against strongSwan's charon at 192.0.2.2
// as the tunnel destination and, optionally, a second charon at 192.0.2.3
// in a third namespace as the backup destination (swantest.AddPeer), and
// a real snmptrapd in a fourth namespace as the receiver of the traps.
// Each test has its own namespaces, so the tests run in parallel.

// swanBackupAddr is the backup charon's address.
var swanBackupAddr = netip.MustParseAddr("192.0.2.3")

// dpdLabConfig describes one lab.
type dpdLabConfig struct {
	// global is ISM's global lines (DPD timers, hold-down); tunnel the
	// tunnel block's extra lines.
	global, tunnel string
	backup         bool
	// primaryPSK is the destination charon's key, swanPSK when empty.
	primaryPSK string
	// aggressive makes both ends use IKEv1 aggressive mode; ikev2 makes
	// them speak IKEv2.
	aggressive, ikev2 bool
	traps             bool
}

// dpdSwanConn renders a charon at local for ISM's tunnel: IKEv1 main mode
// (or aggressive mode) or IKEv2 (version 2), PSK psk, one child "net" for 203.0.113.0/24
// (charon) and 198.51.100.0/24 (ISM), without DPD of its own.
func dpdSwanConn(local netip.Addr, psk string, aggressive bool, version int) swantest.Conf {
	addr, ism := local.String(), swantest.ISMAddr.String()
	return swantest.Conf{InstallRoutes: true, AggressivePSK: aggressive, Swanctl: charon.Swanctl{
		Connections: []charon.Connection{{Name: "ism", Version: version, Aggressive: aggressive, Mobike: noMobike(version),
			LocalAddrs: []string{addr}, RemoteAddrs: []string{ism}, Proposals: []string{"aes128-sha1-modp2048"},
			Timers: charon.Timers{Rekey: charon.Never},
			Local:  charon.End{Auth: "psk", ID: addr}, Remote: charon.End{Auth: "psk", ID: ism},
			Children: []charon.Child{{Name: "net", LocalTS: []string{"203.0.113.0/24"}, RemoteTS: []string{"198.51.100.0/24"},
				ESPProposals: []string{"aes128-sha1"}}}}},
		Secrets: []charon.Secret{{Name: "ike-1", IDs: []string{addr, ism}, Secret: psk}},
	}.Render()}
}

// noMobike turns MOBIKE off for IKEv2, which would move the IKE SA to
// charon's other addresses; nil for IKEv1.
func noMobike(version int) *bool {
	if version != 2 {
		return nil
	}
	no := false
	return &no
}

// dpdSpec is the DPD lab: ISM's tunnel ipsec:t1 from 192.0.2.1 to charon
// at 192.0.2.2 (and a second charon at 192.0.2.3 as backup) for
// 198.51.100.0/24 ↔ 203.0.113.0/24, routed.
func dpdSpec(c dpdLabConfig) labSpec {
	psk := c.primaryPSK
	if psk == "" {
		psk = swanPSK
	}
	version := 1
	if c.ikev2 {
		version = 2
	}
	primary := dpdSwanConn(swantest.SwanAddr, psk, c.aggressive, version)
	s := labSpec{charon: &primary, traps: c.traps, inA: true, a: func(x *lab) string {
		tu := ismTunnel{local: "198.51.100.0 255.255.255.0", remote: "203.0.113.0 255.255.255.0", extra: c.tunnel}
		if c.backup {
			tu.backup = swanBackupAddr.String()
		}
		if c.aggressive {
			tu.extra = "  tunnel ike-mode aggressive\n" + tu.extra
		}
		global := pskRule("aes128", "sha", 14, "", swantest.SwanAddr, swanBackupAddr) + c.global
		if c.ikev2 {
			global = "ipsec ike-version 2\n" + global
		}
		if c.traps {
			global += trapHostLine()
		}
		return ismConf{vrs: [][2]string{{"v", x.a}}, global: global, transforms: []string{"esp-aes128-hmac-sha"}, tunnels: []ismTunnel{tu}}.String()
	}}
	if c.backup {
		b := dpdSwanConn(swanBackupAddr, swanPSK, c.aggressive, version)
		s.backup = &b
	}
	return s
}

// tunnel returns what `show ipsec tunnel detail ipsec:t1` shows, as text
// and as data.
func (x *lab) tunnel(t *testing.T) (string, operator.TunnelStatus) {
	t.Helper()
	return showTunnel(t, x.g)
}

func showTunnel(t *testing.T, g *Gateway) (string, operator.TunnelStatus) {
	t.Helper()
	text, data, err := g.Exec("show ipsec tunnel detail ipsec:t1")
	if err != nil {
		t.Fatal(err)
	}
	ts := data.([]operator.TunnelStatus)
	if len(ts) != 1 || ts[0].IKE == nil {
		t.Fatalf("show ipsec tunnel detail: want one signaled tunnel:\n%s", text)
	}
	return text, ts[0]
}

// statsIKE returns the IKE counters of `show ipsec statistics`.
func statsIKE(t *testing.T, g *Gateway) ike.Counters {
	t.Helper()
	_, data, err := g.Exec("show ipsec statistics")
	if err != nil {
		t.Fatal(err)
	}
	st := data.(operator.Statistics)
	if st.IKE == nil {
		t.Fatal("show ipsec statistics: no IKE counters")
	}
	return *st.IKE
}

// showSAs returns `show ipsec sa` as text and data.
func showSAs(t *testing.T, g *Gateway) (string, []datapath.SAStatus) {
	t.Helper()
	text, data, err := g.Exec("show ipsec sa")
	if err != nil {
		t.Fatal(err)
	}
	sas, _ := data.([]datapath.SAStatus)
	return text, sas
}

// waitDead waits until DPD has declared peer dead (after, if not zero,
// the time after) and returns when it did, as show ipsec tunnel detail
// reports it.
func (x *lab) waitDead(t *testing.T, peer netip.Addr, after time.Time, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text, st := x.tunnel(t)
		if d := st.IKE.DPD; d.DeadPeer == peer && d.DeadAt.After(after) {
			return d.DeadAt
		}
		if time.Now().After(deadline) {
			t.Fatalf("DPD did not declare %s dead:\n%s", peer, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitUpWith waits until the tunnel is up with SAs to dest.
func (x *lab) waitUpWith(t *testing.T, dest netip.Addr, timeout time.Duration) operator.TunnelStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text, st := x.tunnel(t)
		if st.State == "up" && st.IKE.Destination == dest && hasSAWith(st.SAs, dest) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnel not up with %s:\n%s", dest, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hasSAWith reports whether an outbound SA goes to peer and an inbound
// one comes from it.
func hasSAWith(sas []datapath.SAStatus, peer netip.Addr) bool {
	in, out := false, false
	for _, sa := range sas {
		in = in || sa.Direction == "inbound" && sa.Source == peer.String()
		out = out || sa.Direction == "outbound" && sa.Destination == peer.String()
	}
	return in && out
}

// saSPIs returns the SPIs of the SAs that carry traffic with peer.
func saSPIs(sas []datapath.SAStatus, peer netip.Addr) []string {
	var out []string
	for _, sa := range sas {
		if sa.Source == peer.String() || sa.Destination == peer.String() {
			out = append(out, sa.SPI)
		}
	}
	return out
}

// dpdTimers are the settings of a lab's DPD, to compare timings with.
type dpdTimers struct {
	sent, silent, idle, retryInterval time.Duration
	retries                           int
}

// lines renders the timers as global configuration lines.
func (d dpdTimers) lines() string {
	return fmt.Sprintf("ipsec dpd on\nipsec dpd timers sent %d silent %d idle %d\nipsec dpd retry interval %d count %d\n",
		int(d.sent.Seconds()), int(d.silent.Seconds()), int(d.idle.Seconds()), int(d.retryInterval.Seconds()), d.retries)
}

// trafficDeath is how long after the last packet from a peer that went
// silent while traffic to it goes on DPD declares it dead: the silent
// time, then the inquiry and each retry unanswered for a retry interval.
func (d dpdTimers) trafficDeath() time.Duration {
	return d.silent + time.Duration(d.retries+1)*d.retryInterval
}
