package ism

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/ism/trap"
)

// swanProposalCase is a quick mode whose outcome depends on what the two
// ends propose and accept: per role, either the tunnel comes up with
// detail in `show ipsec tunnel detail`, or it stays down with reason in
// its down reason.
type swanProposalCase struct {
	name       string
	ismPFS     int      // ISM's tunnel pfs group, 0 for none
	transforms []string // ISM's transform set
	esp        string   // charon's esp_proposals
	up         map[string]string
	down       map[string]string
}

// TestSwanProposals: no common transform, and PFS mismatches both ways,
// per the seed's rules: "If PFS is enabled, the router mandates PFS during
// SA negotiation. [...] if PFS is disabled, PFS might still be negotiated
// if the remote security gateway requests PFS", and "SA negotiation
// favors the highest request. [...] if group 2 is requested locally, the
// remote security gateway must support group 2 [...]. If group 1 is
// requested locally, either groups 1 or 2 can be accepted, depending on
// requests from the remote security gateway." In IKEv1 only the quick
// mode initiator proposes PFS, so a PFS group the peer requests reaches
// ISM only when the peer initiates; as initiator ISM proposes exactly its
// own setting, which the peer must accept.
func TestSwanProposals(t *testing.T) {
	t.Parallel()
	const noProposal = "NO-PROPOSAL-CHOSEN"
	cases := []swanProposalCase{
		{name: "no-common-transform", transforms: []string{"esp-3des-hmac-md5", "esp-des-hmac-sha"}, esp: "aes128-sha1",
			down: map[string]string{"initiator": noProposal, "responder": "no proposal"}},
		{name: "pfs-local-only", ismPFS: 5, esp: "aes128-sha1",
			down: map[string]string{"initiator": noProposal, "responder": "PFS"}},
		{name: "pfs-peer-only", esp: "aes128-sha1-modp1536",
			up:   map[string]string{"responder": "PFS group 5"},
			down: map[string]string{"initiator": noProposal}},
		{name: "pfs-group2-peer-group5", ismPFS: 2, esp: "aes128-sha1-modp1536",
			up:   map[string]string{"responder": "PFS group 5"},
			down: map[string]string{"initiator": noProposal}},
		{name: "pfs-group5-peer-group2", ismPFS: 5, esp: "aes128-sha1-modp1024",
			down: map[string]string{"initiator": noProposal, "responder": "weaker"}},
		{name: "pfs-group2-peer-group2-or-5", ismPFS: 2, esp: "aes128-sha1-modp1536, aes128-sha1-modp1024",
			up: map[string]string{"initiator": "PFS group 2", "responder": "PFS group 5"}},
	}
	for _, c := range cases {
		for _, role := range swanRoles {
			t.Run(c.name+"/"+role, func(t *testing.T) {
				t.Parallel()
				transforms := c.transforms
				if transforms == nil {
					transforms = []string{"esp-aes128-hmac-sha"}
				}
				tu := ismTunnel{}
				if c.ismPFS != 0 {
					tu.extra = fmt.Sprintf("  tunnel pfs group %d\n", c.ismPFS)
				}
				traps := listenTraps(t)
				global := pskRule("aes128", "sha", 14, "") + fmt.Sprintf(
					"snmp-server host 127.0.0.1 udp-port %d version 2c community public\nsnmp-server enable traps ike-failure\n", traps.port())
				x := newLab(t, swanSpec(ismConf{global: global, transforms: transforms, tunnels: []ismTunnel{tu}},
					swanPeer{Proposals: "aes128-sha1-modp2048", ESP: c.esp}, swantest.Conf{}))
				if want, ok := c.up[role]; ok {
					x.bringUp(t, role)
					x.traffic(t, ismHost, swanHost)
					x.wantShow(t, "show ipsec tunnel detail", "is up", want)
					return
				}
				x.failNegotiation(t, role)
				reason := c.down[role]
				x.wantShow(t, "show ipsec tunnel detail", "is down", "Down because: negotiation failed: ", "Last negotiation error: ", reason)
				if sas := x.show(t, "show ipsec sa"); sas != "" {
					t.Errorf("show ipsec sa after a failed negotiation:\n%s", sas)
				}
				if reason == noProposal || reason == "no proposal" {
					if n := x.ikeCounters(t).noProposal; n == 0 {
						t.Error("show ipsec statistics: no proposal chosen not counted")
					}
				}
				traps.wantIKEFailure(t, "ipsec:t1", reason)
			})
		}
	}
}

// failNegotiation starts a negotiation that must fail from the role's end
// and waits until ISM says it failed.
func (x *lab) failNegotiation(t *testing.T, role string) {
	t.Helper()
	if role == "responder" {
		if out, err := x.env.Initiate("net", 10*time.Second); err == nil {
			t.Fatalf("charon established the child: %s\n%s", out, x.show(t, "show ipsec tunnel detail"))
		}
	} else if out, err := runIn(x.env.NSISM, "ping", "-c", "1", "-W", "1", "-I", ismHost, swanHost); err == nil {
		t.Fatalf("a ping went through: %s", out)
	}
	x.waitFor(t, 20*time.Second, "negotiation failed", func() bool {
		return strings.Contains(x.g.tunnels["t1"].Reason(), "negotiation failed")
	})
}

// trapListener receives SNMPv2c traps on a loopback port of the test's
// own namespace, where the gateway sends them.
type trapListener struct {
	conn *net.UDPConn
}

func listenTraps(t *testing.T) *trapListener {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &trapListener{conn: c}
}

func (l *trapListener) port() int { return l.conn.LocalAddr().(*net.UDPAddr).Port }

// wantIKEFailure waits for an ismIkeFailure trap for the tunnel whose
// reason contains reason.
func (l *trapListener) wantIKEFailure(t *testing.T, tunnel, reason string) {
	t.Helper()
	dec := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Community: "public", Logger: gosnmp.NewLogger(nil)}
	buf := make([]byte, 65536)
	var seen []string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		l.conn.SetReadDeadline(end)
		n, err := l.conn.Read(buf)
		if err != nil {
			break
		}
		p, err := dec.SnmpDecodePacket(buf[:n])
		if err != nil {
			t.Errorf("trap does not decode: %v", err)
			continue
		}
		vars := map[string]string{}
		for _, v := range p.Variables {
			switch val := v.Value.(type) {
			case []byte:
				vars[strings.TrimPrefix(v.Name, ".")] = string(val)
			case string:
				vars[strings.TrimPrefix(v.Name, ".")] = strings.TrimPrefix(val, ".")
			}
		}
		seen = append(seen, fmt.Sprint(vars))
		if vars["1.3.6.1.6.3.1.1.4.1.0"] == trap.OIDIKEFailure && vars[trap.OIDTunnelName+".0"] == tunnel &&
			strings.Contains(vars[trap.OIDReason+".0"], reason) {
			return
		}
	}
	t.Errorf("no ismIkeFailure trap for %s naming %q; received %v", tunnel, reason, seen)
}
