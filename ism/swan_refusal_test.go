package ism

import (
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest"
)

// swanRefusal is a peer ISM must refuse: with charon's first
// configuration the negotiation fails at ISM, which counts an
// authentication failure; then charon is reloaded with the right settings
// and the same running gateway negotiates and carries traffic.
type swanRefusal struct {
	name, role string
	side       ismConf
	bad, good  swanPeer
	// reason is in the tunnel's down reason, when ISM can tell which
	// tunnel the peer meant ("" when it cannot).
	reason string
}

// TestSwanRefusals: a wrong pre-shared key and an identity ISM does not
// know are refused and counted (show ipsec statistics: auth failures),
// with ISM as initiator and as responder; the gateway keeps running, and
// once charon is configured right the tunnel comes up and carries traffic.
//
// A wrong key is found by whoever checks the other's proof first: with ISM
// as responder in main mode (it decrypts the initiator's MM5), with ISM as
// initiator in aggressive mode (it checks HASH_R in AM2). As a main mode
// initiator ISM would only see its MM5 go unanswered until its
// retransmissions run out, since charon refuses it silently.
func TestSwanRefusals(t *testing.T) {
	t.Parallel()
	rule := pskRule("aes128", "sha", 14, "")
	byAddress := ismConf{global: rule, transforms: []string{"esp-aes128-hmac-sha"}, tunnels: []ismTunnel{{}}}
	good := swanPeer{Proposals: "aes128-sha1-modp2048", ESP: "aes128-sha1"}
	wrongKey := good
	wrongKey.PSK = "not-the-interop-psk"
	byFQDN := func(role string) ismConf {
		tu := ismTunnel{extra: "  tunnel local-identity " + gwFQDN + "\n  tunnel ike-mode aggressive\n"}
		if role == "responder" {
			tu.dest = branchFQDN
		} else {
			tu.extra += "  tunnel remote-identity " + branchFQDN + "\n"
		}
		return ismConf{global: pskRule("aes128", "sha", 14, branchFQDN), transforms: []string{"esp-aes128-hmac-sha"}, tunnels: []ismTunnel{tu}}
	}
	branch := swanPeer{Aggressive: true, Proposals: "aes128-sha1-modp2048", ESP: "aes128-sha1", LocalID: branchFQDN, RemoteID: gwFQDN}
	branchWrongKey := branch
	branchWrongKey.PSK = "not-the-interop-psk"
	stranger := branch
	stranger.LocalID = "stranger.example.net"
	cases := []swanRefusal{
		{name: "wrong-psk-main", role: "responder", side: byAddress, bad: wrongKey, good: good, reason: "authentication failed"},
		{name: "wrong-psk-aggressive", role: "initiator", side: byFQDN("initiator"), bad: branchWrongKey, good: branch, reason: "authentication failed"},
		{name: "unknown-identity", role: "initiator", side: byFQDN("initiator"), bad: stranger, good: branch, reason: "peer is stranger.example.net"},
		// The stranger matches no tunnel: only the counter says so.
		{name: "unknown-identity", role: "responder", side: byFQDN("responder"), bad: stranger, good: branch},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.role, func(t *testing.T) {
			t.Parallel()
			x := newLab(t, swanSpec(c.side, c.bad, swantest.Conf{}))
			if c.role == "responder" {
				// charon's exchange fails; it gives up on its own time.
				x.env.Initiate("net", time.Second) //nolint:errcheck // ISM's counter judges
			} else {
				runIn(x.env.NSISM, "ping", "-c", "1", "-W", "1", "-I", ismHost, swanHost) //nolint:errcheck // must fail; the counter judges
			}
			x.waitFor(t, 15*time.Second, "an authentication failure counted", func() bool { return x.ikeCounters(t).authFailed > 0 })
			if c.reason != "" {
				x.waitFor(t, 5*time.Second, "the tunnel's reason", func() bool { return strings.Contains(x.g.tunnels["t1"].Reason(), c.reason) })
			}
			x.wantShow(t, "show ipsec tunnel detail", "is down")
			if sas := x.show(t, "show ipsec sa"); sas != "" {
				t.Errorf("SAs after a refused peer:\n%s", sas)
			}
			for _, row := range x.ikeSARows(t) {
				if strings.Contains(row, "established") {
					t.Errorf("an IKE SA established with a refused peer: %s", row)
				}
			}
			if out, err := x.env.Swanctl("--terminate", "--ike", "ism", "--force", "--timeout", "2"); err != nil && !strings.Contains(out, "no matching") {
				t.Logf("swanctl --terminate: %v: %s", err, out)
			}
			x.reloadCharon(t, c.good)
			x.bringUp(t, c.role)
			x.traffic(t, ismHost, swanHost)
			if rows := x.ikeSARows(t); len(rows) != 1 || !strings.Contains(rows[0], "established") {
				t.Errorf("show ike sa: want one established IKE SA:\n%s", x.show(t, "show ike sa"))
			}
		})
	}
}
