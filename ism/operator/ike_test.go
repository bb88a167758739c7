package operator

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// fakeGateway serves a fixed snapshot.
type fakeGateway struct{ snap Snapshot }

func (g fakeGateway) Snapshot() Snapshot                    { return g.snap }
func (g fakeGateway) ClearStatistics([]string) (int, error) { return 0, nil }

func sel(s string) selector.Set {
	return selector.Of(selector.FromPrefix(netip.MustParsePrefix(s)))
}

// ikeSnapshot has an IKEv1 tunnel and an IKEv2 tunnel with the hybrid,
// each on its IKE SA, and both versions' counters.
func ikeSnapshot() Snapshot {
	ap := netip.MustParseAddrPort
	gcm, _ := transform.Lookup("esp-aes256-gcm16")
	heard := time.Now().Add(-3 * time.Second)
	return Snapshot{
		Tunnels: []TunnelStatus{
			{Name: "ipsec:old", Type: "signaled", State: "up", Source: "192.0.2.1",
				IKE: &ike.TunnelStatus{Name: "old", Version: 1, State: "up", IKESA: "established", Peer: ap("192.0.2.5:4500"), Transform: gcm, PFSGroup: 14,
					Children: []ike.ChildStatus{{Local: sel("10.1.0.0/16"), Remote: sel("10.2.0.0/16"), InboundSPI: 0xc1, OutboundSPI: 0xc2, Transform: gcm, PFSGroup: 14}}}},
			{Name: "ipsec:new", Type: "signaled", State: "up", Source: "192.0.2.1",
				IKE: &ike.TunnelStatus{Name: "new", Version: 2, State: "up", Peer: ap("192.0.2.2:4500"), Transform: gcm, PFSGroup: 31,
					TimeLeft: time.Hour, Rekeys: 2, LastError: "NO_PROPOSAL_CHOSEN", IKESA: "established",
					Children: []ike.ChildStatus{{Local: sel("10.1.0.0/16"), Remote: sel("10.3.0.0/24"), InboundSPI: 0xd1, OutboundSPI: 0xd2,
						Transform: gcm, PFSGroup: 31, TimeLeft: time.Hour}}}},
		},
		IKE: &ike.Counters{Received: 30},
		IKEVersions: map[int]ike.Counters{1: {Received: 10},
			2: {Received: 20, Malformed: 3, UnknownSA: 2, InvalidIKESPISent: 2, OutOfWindow: 4, InvalidKE: 1, CookiesSent: 5, FragmentsDropped: 6, IKESARekeys: 7}},
		IKESAs: []ike.IKESAStatus{
			{Version: 1, Local: ap("192.0.2.1:4500"), Remote: ap("192.0.2.5:4500"), ICookie: "aa", RCookie: "bb", Initiator: true,
				Mode: ike.AggressiveMode, State: "established", Established: true, NATT: true,
				Policy: ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA1, Auth: ike.AuthPSK, Group: 2}},
			{Version: 2, Local: ap("192.0.2.1:4500"), Remote: ap("192.0.2.2:4500"), ICookie: "0102030405060708", RCookie: "1112131415161718",
				State: "established", Established: true, NATT: true, RemoteNAT: true, LastHeard: heard, LifetimeLeft: 2 * time.Hour, Rekeys: 1,
				Cookies: 1, DPD: true, PeerDPD: true, AdditionalKE: []int{ike.MLKEM768},
				Policy: ike.Policy{Encryption: ike.EncAES256GCM, Hash: ike.HashSHA1, PRF: ike.HashSHA384, Auth: ike.AuthECDSASig, Group: 20}},
		},
	}
}

// TestShowIKE: `show ike sa` names each SA's version, algorithms (the
// additional key exchange too), NAT, cookies, liveness and SPIs;
// `show ipsec tunnel detail` tells the IKEv2 tunnel's story with its IKE
// SA; `show ipsec statistics` counts IKEv2's refusals by reason; -json
// carries the same.
func TestShowIKE(t *testing.T) {
	g := fakeGateway{ikeSnapshot()}
	want := map[string][]string{
		"show ike sa": {
			"IKEv1 aggressive", "aes128/hmac-sha1/hmac-sha1/modp1024", "nat-t",
			"IKEv2", "responder", "aes256-gcm/none/hmac-sha384/ecp384+mlkem768", "ecdsa-sig", "remote", "1 sent", "3s ago",
			"0102030405060708/1112131415161718"},
		"show ipsec tunnel detail new": {
			"IKE SA with 192.0.2.2:4500: established, 0102030405060708/1112131415161718, IKEv2 responder, aes256-gcm/none/hmac-sha384/ecp384+mlkem768, authentication ecdsa-sig, NAT remote, 2h0m0s left, 1 rekeys",
			"Child SAs: up, 1 child SA pair, newest esp-aes256-gcm16, PFS group 31, 1h0m0s left, 2 rekeys",
			"10.1.0.0/16 to 10.3.0.0/24: esp-aes256-gcm16, PFS group 31, 1h0m0s left",
			"inbound spi 0x000000d1 (not installed); outbound spi 0x000000d2 (not installed)",
			"Last negotiation error: NO_PROPOSAL_CHOSEN",
			"Liveness: checks on, peer last heard 3s ago"},
		"show ipsec tunnel detail old": {"IKE SA (phase 1) with 192.0.2.5:4500: established, aa/bb, IKEv1 aggressive initiator",
			"Child SAs (phase 2): up, 1 child SA pair, newest esp-aes256-gcm16, PFS group 14", "DPD: off"},
		"show ipsec statistics": {
			"IKEv1: 10 received",
			"IKEv2: 20 received", "0 child SA and 7 IKE SA rekeys", "cookies 5 sent",
			"IKEv2 refused: 3 malformed, 2 unknown SPI (2 INVALID_IKE_SPI sent, 0 rate-limited), 4 out of window", "1 invalid KE", "6 fragments dropped"},
	}
	wantJSON := map[string][]string{
		"show ike sa":                  {`"version":2`, `"additional_ke":["36 (mlkem768)"]`, `"prf":"hmac-sha384"`, `"integrity":"none"`, `"cookies_sent":1`, `"nat_remote":true`, `"spi_i":"0102030405060708"`},
		"show ipsec tunnel detail new": {`"ike_sa":{"version":2`, `"Version":2`},
		"show ipsec statistics":        {`"ikev2":{"Received":20`, `"OutOfWindow":4`},
	}
	for cmd, ws := range want {
		text, data, err := Exec(g, cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		for _, w := range ws {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", cmd, w, text)
			}
		}
		js, err := json.Marshal(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wantJSON[cmd] {
			if !strings.Contains(string(js), w) {
				t.Errorf("%s -json lacks %s:\n%s", cmd, w, js)
			}
		}
	}
	if text, _, _ := Exec(g, "show ike sa"); len(strings.Split(strings.TrimSpace(text), "\n")) != 3 {
		t.Errorf("show ike sa: want a header and a line an SA:\n%s", text)
	}
}
