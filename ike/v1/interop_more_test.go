package v1

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/ipsec"
)

// startRole brings the tunnel up from ISM's side or charon's.
func (x *interop) startRole(ismInitiates bool, tunnel, child string) {
	if ismInitiates {
		x.d.Acquire(tunnel)
		return
	}
	go x.env.Initiate(child, 30*time.Second) //nolint:errcheck // the caller judges by events
}

func roles() []string { return []string{"ISMInitiator", "ISMResponder"} }

// TestInteropNoCommonTransform: the tunnel stays down, with the reason in
// Status and a NegotiationFailed event.
func TestInteropNoCommonTransform(t *testing.T) {
	swantest.Skip(t)
	t.Parallel()
	for _, role := range roles() {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
			cfg.Tunnels = []ike.Tunnel{ismTunnel(t, "t1", "esp-3des-hmac-md5")}
			x := newInterop(t, cfg, swantest.Conf{Swanctl: swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1"}.render()})
			x.startRole(role == "ISMInitiator", "t1", "net")
			e := waitEvent(t, x.lis, "failed", "t1", 30*time.Second)
			if !strings.Contains(e.Reason, "NO-PROPOSAL-CHOSEN") && !strings.Contains(e.Reason, "no proposal") {
				t.Errorf("reason %q does not say no proposal was chosen", e.Reason)
			}
			st := x.tunnelStatus(t, "t1")
			if st.State != "down" || st.LastError == "" {
				t.Errorf("status %+v: want down with a reason", st)
			}
			if n := len(x.inst.SAs()); n != 0 {
				t.Errorf("%d SAs installed", n)
			}
			if x.d.Status().Counters.NoProposalChosen == 0 {
				t.Error("NoProposalChosen not counted")
			}
		})
	}
}

// TestInteropPFSMismatch: PFS enabled locally is mandatory; a peer that
// requires PFS refuses ISM's proposal without it.
func TestInteropPFSMismatch(t *testing.T) {
	swantest.Skip(t)
	t.Parallel()
	cases := []struct {
		name      string
		ismPFS    int
		swanESP   string
		ismInit   bool
		wantInMsg string
	}{
		{"ISMRequiresPFS/ISMInitiator", 5, "aes128-sha1", true, "NO-PROPOSAL-CHOSEN"},
		{"ISMRequiresPFS/ISMResponder", 5, "aes128-sha1", false, "PFS"},
		{"PeerRequiresPFS/ISMInitiator", 0, "aes128-sha1-modp1536", true, "NO-PROPOSAL-CHOSEN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
			tu := ismTunnel(t, "t1", "esp-aes128-hmac-sha")
			tu.PFSGroup = c.ismPFS
			cfg.Tunnels = []ike.Tunnel{tu}
			x := newInterop(t, cfg, swantest.Conf{Swanctl: swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: c.swanESP}.render()})
			x.startRole(c.ismInit, "t1", "net")
			e := waitEvent(t, x.lis, "failed", "t1", 30*time.Second)
			if !strings.Contains(e.Reason, c.wantInMsg) {
				t.Errorf("reason %q, want it to mention %s", e.Reason, c.wantInMsg)
			}
			if n := len(x.inst.SAs()); n != 0 {
				t.Errorf("%d SAs installed", n)
			}
		})
	}
}

// checkMakeBeforeBreak checks the Installer's call order: every inbound SA
// deleted while the tunnel stayed up was deleted after a newer inbound SA
// had been added.
func checkMakeBeforeBreak(t *testing.T, calls []iketest.Call) {
	t.Helper()
	added := map[ipsec.SAID]int{}
	inbound := map[ipsec.SAID]bool{}
	lastAddIn := -1
	for i, c := range calls {
		switch c.Op {
		case "add":
			added[c.ID] = i
			if c.SA.Inbound {
				inbound[c.ID] = true
				lastAddIn = i
			}
		case "delete":
			if inbound[c.ID] && lastAddIn <= added[c.ID] {
				t.Errorf("call %d deletes inbound %v before any newer inbound SA was added: %v", i, c, calls)
			}
		}
	}
}

// TestInteropRekeyShortLifetime: a 6 s lifetime gives several rekeys,
// each new inbound SA added before the old one is deleted, and the tunnel
// never goes down.
func TestInteropRekeyShortLifetime(t *testing.T) {
	swantest.Skip(t)
	t.Parallel()
	for _, role := range roles() {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			ismInit := role == "ISMInitiator"
			cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
			tu := ismTunnel(t, "t1", "esp-aes128-hmac-sha")
			// A peer's lifetime below 30 s is refused unless this end's
			// own is shorter still (ipsec.Lifetime.CheckMinimum).
			tu.Lifetime = ipsec.Lifetime{Time: 6 * time.Second}
			cfg.Tunnels = []ike.Tunnel{tu}
			sc := swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1"}
			if !ismInit {
				sc.ChildTimers = charon.Timers{Rekey: 4 * time.Second, Life: 6 * time.Second, Rand: time.Second}
			}
			x := newInterop(t, cfg, swantest.Conf{Swanctl: sc.render()})
			x.startRole(ismInit, "t1", "net")
			waitEvent(t, x.lis, "up", "t1", 30*time.Second)
			deadline := time.Now().Add(60 * time.Second)
			for x.tunnelStatus(t, "t1").Rekeys < 2 {
				if time.Now().After(deadline) {
					t.Fatalf("rekeys %d after 60 s; calls %v", x.tunnelStatus(t, "t1").Rekeys, x.inst.Calls())
				}
				time.Sleep(250 * time.Millisecond)
			}
			time.Sleep(3 * time.Second) // the old inbound SA's grace period
			for _, e := range x.lis.Events() {
				if e.Kind == "down" || e.Kind == "failed" {
					t.Errorf("event %v during rekeys", e)
				}
			}
			checkMakeBeforeBreak(t, x.inst.Calls())
			x.checkCharon(t, "t1", want{ikeEncr: "AES_CBC", ikeKeySize: "128", ikeInteg: "HMAC_SHA1_96", ikeDH: "MODP_2048",
				espEncr: "AES_CBC", espKeySize: "128", espInteg: "HMAC_SHA1_96"})
		})
	}
}

// TestInteropVolumeRekey: the data path's soft expiry by volume rekeys.
func TestInteropVolumeRekey(t *testing.T) {
	swantest.Skip(t)
	t.Parallel()
	for _, role := range roles() {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
			tu := ismTunnel(t, "t1", "esp-aes128-hmac-sha")
			tu.Lifetime = ipsec.Lifetime{Time: time.Hour, Bytes: 10 << 20}
			cfg.Tunnels = []ike.Tunnel{tu}
			x := newInterop(t, cfg, swantest.Conf{Swanctl: swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1"}.render()})
			x.startRole(role == "ISMInitiator", "t1", "net")
			waitEvent(t, x.lis, "up", "t1", 30*time.Second)
			_, out, ids := x.inst.Tunnel("t1")
			if len(out) != 1 || out[0].Hard.Bytes != 10<<20 || out[0].Soft.Bytes == 0 || out[0].Soft.Bytes >= out[0].Hard.Bytes {
				t.Fatalf("outbound SA lifetimes: %+v", out)
			}
			var outID ipsec.SAID
			for _, id := range ids {
				if x.inst.SAs()[id].Inbound == false {
					outID = id
				}
			}
			x.d.Expire(outID, false)
			deadline := time.Now().Add(30 * time.Second)
			for x.tunnelStatus(t, "t1").Rekeys < 1 {
				if time.Now().After(deadline) {
					t.Fatalf("no rekey after the soft expiry; calls %v", x.inst.Calls())
				}
				time.Sleep(100 * time.Millisecond)
			}
			if x.tunnelStatus(t, "t1").OutboundSPI == outID.SPI {
				t.Error("the outbound SPI did not change")
			}
			time.Sleep(3 * time.Second)
			if _, ok := x.inst.SAs()[outID]; ok {
				t.Error("the expired outbound SA was not deleted")
			}
			checkMakeBeforeBreak(t, x.inst.Calls())
			x.checkCharon(t, "t1", want{ikeEncr: "AES_CBC", ikeKeySize: "128", ikeInteg: "HMAC_SHA1_96", ikeDH: "MODP_2048",
				espEncr: "AES_CBC", espKeySize: "128", espInteg: "HMAC_SHA1_96"})
		})
	}
}

// TestInteropSharedIKESA: two tunnels to the same peer share one IKE SA.
func TestInteropSharedIKESA(t *testing.T) {
	swantest.Skip(t)
	t.Parallel()
	for _, role := range roles() {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			ismInit := role == "ISMInitiator"
			cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
			t1 := pairTunnel(t, "t1", swantest.ISMAddr, swantest.SwanAddr, netip.MustParsePrefix("198.51.100.0/25"), netip.MustParsePrefix("203.0.113.0/25"), "esp-aes128-hmac-sha")
			t2 := pairTunnel(t, "t2", swantest.ISMAddr, swantest.SwanAddr, netip.MustParsePrefix("198.51.100.128/25"), netip.MustParsePrefix("203.0.113.128/25"), "esp-aes128-hmac-sha")
			cfg.Tunnels = []ike.Tunnel{t1, t2}
			sc := swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1", LocalTS: "203.0.113.0/25", RemoteTS: "198.51.100.0/25",
				Children: []charon.Child{{Name: "net2", LocalTS: []string{"203.0.113.128/25"}, RemoteTS: []string{"198.51.100.128/25"}, ESPProposals: []string{"aes128-sha1"}}}}
			x := newInterop(t, cfg, swantest.Conf{Swanctl: sc.render()})
			if ismInit {
				x.d.Acquire("t1")
				x.d.Acquire("t2")
			} else {
				if out, err := x.env.Initiate("net", 30*time.Second); err != nil {
					t.Fatalf("initiate: %v\n%s", err, out)
				}
				go x.env.Initiate("net2", 30*time.Second) //nolint:errcheck // judged by events
			}
			waitEvent(t, x.lis, "up", "t1", 30*time.Second)
			waitEvent(t, x.lis, "up", "t2", 30*time.Second)
			if n := len(x.d.Status().IKESAs); n != 1 {
				t.Errorf("ISM has %d IKE SAs, want 1", n)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				sas, err := x.env.ListSAs()
				if err != nil {
					t.Fatal(err)
				}
				installed := 0
				for _, sa := range sas {
					for _, c := range sa.Children {
						if c.F["state"] == "INSTALLED" {
							installed++
						}
					}
				}
				if len(sas) == 1 && installed == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("charon: %d IKE SAs, %d installed CHILD_SAs; want 1 and 2: %+v", len(sas), installed, sas)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestInteropRefusals: a wrong pre-shared key, an unknown identity and
// malformed or truncated datagrams are refused and counted, and the
// daemon goes on working.
func TestInteropRefusals(t *testing.T) {
	swantest.Skip(t)
	t.Parallel()
	t.Run("WrongPSK/ISMInitiator", func(t *testing.T) {
		t.Parallel()
		cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
		cfg.PreSharedKeys[0].Key = ipsec.Key("not-the-right-key")
		cfg.Retransmit = ike.Retransmit{Timeout: 500 * time.Millisecond, Base: 1.2, Tries: 2}
		cfg.Tunnels = []ike.Tunnel{ismTunnel(t, "t1", "esp-aes128-hmac-sha")}
		x := newInterop(t, cfg, swantest.Conf{Swanctl: swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1"}.render()})
		x.d.Acquire("t1")
		e := waitEvent(t, x.lis, "failed", "t1", 60*time.Second)
		t.Logf("refused: %s", e.Reason)
		if len(x.inst.SAs()) != 0 {
			t.Error("SAs installed")
		}
	})
	t.Run("WrongPSK/ISMResponder", func(t *testing.T) {
		t.Parallel()
		cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
		cfg.PreSharedKeys[0].Key = ipsec.Key("not-the-right-key")
		cfg.Tunnels = []ike.Tunnel{ismTunnel(t, "t1", "esp-aes128-hmac-sha")}
		x := newInterop(t, cfg, swantest.Conf{Swanctl: swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1"}.render()})
		if out, err := x.env.Initiate("net", 4*time.Second); err == nil {
			t.Fatalf("charon established with a wrong key: %s", out)
		}
		waitCounter(t, x.d, func(c ike.Counters) uint64 { return c.AuthFailed }, 10*time.Second)
		if len(x.inst.SAs()) != 0 {
			t.Error("SAs installed")
		}
	})
	t.Run("UnknownIdentity", func(t *testing.T) {
		t.Parallel()
		cfg := ike.Config{Policies: []ike.Policy{policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14)},
			PreSharedKeys: []ike.PreSharedKey{{Peer: branchFQDN, Key: ipsec.Key(interopPSK)}}}
		tu := ismTunnel(t, "t1", "esp-aes128-hmac-sha")
		tu.Destination, tu.Mode, tu.LocalID, tu.RemoteID = netip.Addr{}, ike.AggressiveMode, fqdn(gwFQDN), fqdn(branchFQDN)
		cfg.Tunnels = []ike.Tunnel{tu}
		sc := swanConn{Aggressive: true, Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1",
			LocalID: "stranger.example.net", RemoteID: gwFQDN}
		x := newInterop(t, cfg, swantest.Conf{Swanctl: sc.render(), AggressivePSK: true})
		if out, err := x.env.Initiate("net", 4*time.Second); err == nil {
			t.Fatalf("charon established with an unknown identity: %s", out)
		}
		waitCounter(t, x.d, func(c ike.Counters) uint64 { return c.AuthFailed }, 10*time.Second)
		if len(x.inst.SAs()) != 0 {
			t.Error("SAs installed for an unknown identity")
		}
		for _, sa := range x.d.Status().IKESAs {
			if sa.Established {
				t.Errorf("IKE SA established with an unknown identity: %+v", sa)
			}
		}
	})
	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		cfg := pskConfig(policy(ike.EncAES128, ike.HashSHA1, ike.AuthPSK, 14))
		cfg.Tunnels = []ike.Tunnel{ismTunnel(t, "t1", "esp-aes128-hmac-sha")}
		x := newInterop(t, cfg, swantest.Conf{Swanctl: swanConn{Proposals: "aes128-sha1-modp2048", ESPProposals: "aes128-sha1"}.render()})
		good := seedMessages()
		var bad [][]byte
		for _, m := range good {
			for n := 0; n < len(m); n += 7 {
				bad = append(bad, m[:n]) // truncated
			}
			flip := append([]byte(nil), m...)
			flip[HeaderSize+2] ^= 0xff // a payload length
			bad = append(bad, flip)
		}
		bad = append(bad, []byte("\x00\x00\x00\x00garbage"), make([]byte, 40))
		// From a raw UDP socket in charon's namespace, to port 500 and
		// (with the non-ESP marker) to 4500.
		if err := swantest.InNamespace(x.env.NSSwan, func() error {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IP(swantest.SwanAddr.AsSlice()), Port: 0})
			if err != nil {
				return err
			}
			defer c.Close()
			for _, b := range bad {
				c.WriteToUDPAddrPort(b, netip.AddrPortFrom(swantest.ISMAddr, 500))                                 //nolint:errcheck
				c.WriteToUDPAddrPort(append([]byte{0, 0, 0, 0}, b...), netip.AddrPortFrom(swantest.ISMAddr, 4500)) //nolint:errcheck
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		waitCounter(t, x.d, func(c ike.Counters) uint64 { return c.Malformed }, 10*time.Second)
		// Still working: a real negotiation succeeds.
		x.d.Acquire("t1")
		waitEvent(t, x.lis, "up", "t1", 30*time.Second)
		c := x.d.Status().Counters
		t.Logf("counters after garbage: %+v", c)
		if c.Received < uint64(len(bad)) {
			t.Errorf("received %d of %d datagrams", c.Received, 2*len(bad))
		}
	})
}

// waitCounter waits until a counter is non-zero.
func waitCounter(t *testing.T, d *Daemon, f func(ike.Counters) uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for f(d.Status().Counters) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("counter still zero: %+v", d.Status().Counters)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
