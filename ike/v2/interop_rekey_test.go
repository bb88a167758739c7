package v2

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/ipsec"
)

// Interop with charon for stage 2a: IKE SA rekeys (and their collision),
// cookies both ways with INVALID_KE in the same sequence, INITIAL_CONTACT
// after charon restarts, failover to a second charon.

var aes128sha256g14 = ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14}

// charonIKESA waits until charon has exactly one established IKE SA with
// the given SPIs (ISM's status's hex) and a child SA with ISM's SPIs.
func (x *interop) charonIKESA(t *testing.T, st ike.IKESAStatus) swantest.IKESA {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sas, err := x.env.ListSAs()
		if err != nil {
			t.Fatal(err)
		}
		if len(sas) == 1 && sas[0].F["state"] == "ESTABLISHED" &&
			strings.EqualFold(sas[0].F["initiator-spi"], st.ICookie) && strings.EqualFold(sas[0].F["responder-spi"], st.RCookie) {
			return sas[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon's IKE SAs %+v, want only %s/%s", sas, st.ICookie, st.RCookie)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestInteropIKERekey: the IKE SA rekeyed by time, once by ISM (its
// policy lifetime) and once by charon (rekey_time): charon lists one IKE
// SA, with the new SPI pair, the old one gone, and the same child SA; ISM's
// installer saw nothing but the first SA pair.
func TestInteropIKERekey(t *testing.T) {
	t.Parallel()
	for _, ismRekeys := range []bool{true, false} {
		name := map[bool]string{true: "ISMRekeys", false: "CharonRekeys"}[ismRekeys]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pol := aes128sha256g14
			sc := swanConn{Proposals: "aes128-sha256-modp2048", ESPProposals: "aes128gcm16"}
			if ismRekeys {
				pol.Lifetime = 12 * time.Second
			} else {
				sc.IKETimers, sc.IKEExtra = charon.Timers{Rekey: 6 * time.Second, Rand: charon.Never}, []string{"over_time = 60s"}
			}
			cfg := pskConfig(pol)
			cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
			x := newInterop(t, cfg, sc.render())
			x.up(t, true)
			_, child := x.waitCharon(t)
			old := x.d.Status().IKESAs[0]
			x.charonIKESA(t, old)
			deadline := time.Now().Add(40 * time.Second) // a loaded machine
			for {
				s := x.d.Status().IKESAs
				if len(s) == 1 && s[0].Rekeys >= 1 && s[0].Established {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no IKE SA rekey: %+v", s)
				}
				time.Sleep(200 * time.Millisecond)
			}
			cur := x.d.Status().IKESAs[0]
			if cur.ICookie == old.ICookie || cur.RCookie == old.RCookie {
				t.Fatalf("the SPIs did not change: %+v", cur)
			}
			if cur.Initiator != ismRekeys {
				t.Errorf("ISM is the new IKE SA's initiator: %v", cur.Initiator)
			}
			sa := x.charonIKESA(t, cur)
			if len(sa.Children) != 1 || sa.Children[0].F["spi-in"] != child.F["spi-in"] || sa.Children[0].F["spi-out"] != child.F["spi-out"] {
				t.Fatalf("charon's child SAs after the rekey: %+v, before %+v", sa.Children, child.F)
			}
			if calls := x.inst.Calls(); len(calls) != 2 {
				t.Fatalf("ISM's installer saw %v", calls)
			}
			if !strings.Contains(x.env.Log(), "rekey") {
				t.Errorf("charon logged no rekey")
			}
		})
	}
}

// holdTransport holds ISM's CREATE_CHILD_SA messages while on, to
// release them in the order a test wants.
type holdTransport struct {
	ike.Transport
	mu   sync.Mutex
	on   bool
	held [][3]any
}

func (h *holdTransport) Send(local, remote netip.AddrPort, msg []byte) error {
	h.mu.Lock()
	if h.on && len(msg) > 18 && ExchangeType(msg[18]) == CreateChildSA {
		h.held = append(h.held, [3]any{local, remote, append([]byte(nil), msg...)})
		h.mu.Unlock()
		return nil
	}
	h.mu.Unlock()
	return h.Transport.Send(local, remote, msg)
}

// release sends what it held, in order, and stops holding.
func (h *holdTransport) release() {
	h.mu.Lock()
	held := h.held
	h.held, h.on = nil, false
	h.mu.Unlock()
	for _, m := range held {
		_ = h.Transport.Send(m[0].(netip.AddrPort), m[1].(netip.AddrPort), m[2].([]byte))
		time.Sleep(50 * time.Millisecond)
	}
}

// TestInteropIKERekeyCollision: ISM and charon rekey the IKE SA at once.
// ISM starts first but its request is held back until it has answered
// charon's (swanctl --rekey); then its request goes, then its answer: each
// end gets the other's request while its own is out, a real collision
// (charon logs it). Both keep the same one new IKE SA, with the same child
// SA, and ISM's installer sees nothing.
func TestInteropIKERekeyCollision(t *testing.T) {
	t.Parallel()
	cfg := pskConfig(aes128sha256g14)
	cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
	x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-modp2048", ESPProposals: "aes128gcm16"}.render())
	x.up(t, true)
	_, child := x.waitCharon(t)
	before := x.d.Status().IKESAs[0]
	h := &holdTransport{Transport: x.udp, on: true}
	x.d.tr = h
	sa := onlyIKESA(t, &side{d: x.d})
	sa.lock()
	sa.rekeyIKE()
	sa.unlock()
	done := make(chan error, 1)
	go func() {
		out, err := x.env.Swanctl("--rekey", "--ike", "ism")
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		done <- err
	}()
	// ISM's request may be held more than once (its retransmission, when
	// swanctl is slow to start on a busy machine): wait for the answer.
	waitWithin(t, 30*time.Second, "ISM answers charon's rekey", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, m := range h.held {
			if msg := m[2].([]byte); Flags(msg[19])&FlagResponse != 0 {
				return true
			}
		}
		return false
	})
	h.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A side that did not notice the collision leaves the loser to the
	// other's rekeyedWait.
	deadline := time.Now().Add(rekeyedWait + 10*time.Second)
	for {
		s := x.d.Status().IKESAs
		if len(s) == 1 && s[0].Established && s[0].ICookie != before.ICookie {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ISM's IKE SAs: %+v", s)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cur := x.d.Status().IKESAs[0]
	sa2 := x.charonIKESA(t, cur)
	if len(sa2.Children) != 1 || sa2.Children[0].F["spi-in"] != child.F["spi-in"] || sa2.Children[0].F["spi-out"] != child.F["spi-out"] {
		t.Fatalf("charon's child SAs after the rekey: %+v", sa2.Children)
	}
	if n := x.d.Status().Counters.RekeyCollisions; n != 1 || !strings.Contains(x.env.Log(), "collision") {
		t.Fatalf("ISM counted %d collisions; charon's log has none: %v", n, !strings.Contains(x.env.Log(), "collision"))
	}
	for _, l := range strings.Split(x.env.Log(), "\n") {
		if strings.Contains(l, "collision") {
			t.Logf("charon: %s", strings.TrimSpace(l))
		}
	}
	if calls := x.inst.Calls(); len(calls) != 2 {
		t.Fatalf("ISM's installer saw %v", calls)
	}
}

// TestInteropCookies: cookies with INVALID_KE_PAYLOAD in one sequence
// (§2.6.1), each way. ISMDemands: ISM's threshold is 0 and it wants
// ECP-256; charon initiates with MODP-2048, gets a cookie, then
// INVALID_KE, and gets in with both. CharonDemands: charon's
// cookie_threshold_ip is 1 and a half-open IKE SA from ISM's address is
// waiting (a raw IKE_SA_INIT), so charon demands a cookie of ISM, then
// ECP-256; ISM follows both.
func TestInteropCookies(t *testing.T) {
	t.Parallel()
	p19 := ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 19}
	t.Run("ISMDemands", func(t *testing.T) {
		t.Parallel()
		cfg := pskConfig(p19)
		cfg.CookieThreshold = threshold(0)
		cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
		x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-modp2048-ecp256", ESPProposals: "aes128gcm16"}.render())
		x.up(t, false)
		x.check(t, swanWant{encr: "AES_CBC", keysize: "128", integ: "HMAC_SHA2_256_128", prf: "PRF_HMAC_SHA2_256", dh: "ECP_256",
			espEncr: "AES_GCM_16", espKeysize: "128"})
		st := x.d.Status()
		if st.Counters.CookiesSent < 1 || st.Counters.InvalidKE < 1 || st.IKESAs[0].Cookies != 1 {
			t.Fatalf("cookies sent %d, INVALID_KE %d, the IKE SA's cookie %d", st.Counters.CookiesSent, st.Counters.InvalidKE, st.IKESAs[0].Cookies)
		}
	})
	t.Run("CharonDemands", func(t *testing.T) {
		t.Parallel()
		cfg := pskConfig(aes128sha256g14, p19)
		cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
		env := swantest.New(t)
		x := newInteropIn(t, env, cfg, swantest.Conf{Charon: "cookie_threshold = 1\n  cookie_threshold_ip = 1",
			Swanctl: swanConn{Proposals: "aes128-sha256-ecp256", ESPProposals: "aes128gcm16"}.render()})
		ni := make([]byte, 32)
		_, _ = rand.Read(ni)
		// The half-open SA must be one charon keeps: a KE of the group it
		// wants (ECP-256), or it answers INVALID_KE and keeps nothing.
		raw := rawInit(t, x.d, 19, 0x0123456789abcdef, ni, nil)
		if err := x.udp.Send(netip.AddrPortFrom(swantest.ISMAddr, 500), netip.AddrPortFrom(swantest.SwanAddr, 500), raw); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "charon's half-open IKE SA", func() bool {
			return strings.Contains(x.env.Log(), "generating IKE_SA_INIT response 0 [ SA KE")
		})
		x.up(t, true)
		x.check(t, swanWant{encr: "AES_CBC", keysize: "128", integ: "HMAC_SHA2_256_128", prf: "PRF_HMAC_SHA2_256", dh: "ECP_256",
			espEncr: "AES_GCM_16", espKeysize: "128"})
		st := x.d.Status()
		if st.Counters.CookiesReceived < 1 || st.Counters.InvalidKE < 1 || st.IKESAs[0].Cookies < 1 {
			t.Fatalf("cookies received %d, INVALID_KE %d, the IKE SA's %d", st.Counters.CookiesReceived, st.Counters.InvalidKE, st.IKESAs[0].Cookies)
		}
	})
}

// TestInteropInitialContact: charon restarts (killed, started again) and
// sets the tunnel up anew; its IKE_AUTH carries INITIAL_CONTACT and ISM
// drops the old IKE SA and child SAs at once — DPD is off, so nothing
// else would.
func TestInteropInitialContact(t *testing.T) {
	t.Parallel()
	cfg := pskConfig(aes128sha256g14)
	cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
	conf := swanConn{Proposals: "aes128-sha256-modp2048", ESPProposals: "aes128gcm16"}.render()
	x := newInterop(t, cfg, conf)
	x.up(t, true)
	x.waitCharon(t)
	old := x.inst.Calls()
	oldSA := x.d.Status().IKESAs[0]
	x.env.Kill()
	x.env.StartCharon(swantest.Conf{Swanctl: conf})
	start := time.Now()
	if out, err := x.env.Initiate("net", 15*time.Second); err != nil {
		t.Fatalf("swanctl --initiate: %v\n%s", err, out)
	}
	waitFor(t, "the old SAs gone", func() bool {
		sas := x.inst.SAs()
		_, a := sas[old[0].ID]
		_, b := sas[old[1].ID]
		return !a && !b
	})
	took := time.Since(start)
	st := x.d.Status()
	if len(st.IKESAs) != 1 || st.IKESAs[0].ICookie == oldSA.ICookie || st.IKESAs[0].Initiator {
		t.Fatalf("ISM's IKE SAs: %+v", st.IKESAs)
	}
	x.waitCharon(t)
	if !strings.Contains(x.env.Log(), "INITIAL_CONTACT") && !strings.Contains(x.env.Log(), "N(INIT_CONTACT)") {
		t.Errorf("charon's log shows no INITIAL_CONTACT")
	}
	t.Logf("old SAs dropped %v after charon's initiate", took)
}

// TestInteropFailover: DPD declares the primary charon dead (killed by
// pid) and the tunnel fails over to a second charon at its backup
// destination, which then holds ISM's child SA.
func TestInteropFailover(t *testing.T) {
	t.Parallel()
	backupAddr := netip.MustParseAddr("192.0.2.3")
	cfg := pskConfig(aes128sha256g14)
	cfg.PreSharedKeys = append(cfg.PreSharedKeys, ike.PreSharedKey{Peer: backupAddr.String(), Key: ipsec.Key(interopPSK)})
	tu := interopTunnel(t, "esp-aes128-gcm16")
	tu.BackupDestination = backupAddr
	tu.DPD = &ipsec.DPD{Enabled: true, Sent: 2 * time.Second, Silent: 2 * time.Second, Idle: 2 * time.Second,
		RetryInterval: time.Second, Retries: 2}
	cfg.Tunnels = []ike.Tunnel{tu}
	x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-modp2048", ESPProposals: "aes128gcm16"}.render())
	backup := x.env.AddPeer(t, backupAddr)
	backup.StartCharon(swantest.Conf{Swanctl: swanConn{Local: backupAddr, Proposals: "aes128-sha256-modp2048", ESPProposals: "aes128gcm16"}.render()})
	x.up(t, true)
	x.waitCharon(t)
	x.env.Kill()
	killed := time.Now()
	waitEvent(t, x.lis, "dead", "t1")
	f := waitEvent(t, x.lis, "failover", "t1")
	if f.From != swantest.SwanAddr || f.To != backupAddr {
		t.Fatalf("failover %v", f)
	}
	waitFor(t, "up at the backup", func() bool {
		st := x.d.Status().Tunnels[0]
		return st.State == "up" && st.Peer.Addr() == backupAddr
	})
	st := x.d.Status().Tunnels[0]
	deadline := time.Now().Add(15 * time.Second)
	for {
		sas, err := backup.ListSAs()
		if err != nil {
			t.Fatal(err)
		}
		if len(sas) == 1 && len(sas[0].Children) == 1 && sas[0].Children[0].F["spi-in"] == fmt.Sprintf("%08x", st.OutboundSPI) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backup charon's SAs: %+v", sas)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if fo := st.Failover; fo.Count != 1 || !fo.OnBackup || fo.LastDuration <= 0 {
		t.Fatalf("failover status %+v", fo)
	}
	t.Logf("failover: %v from the kill to SAs at the backup (status: %v from the last message)", time.Since(killed), st.Failover.LastDuration)
}
