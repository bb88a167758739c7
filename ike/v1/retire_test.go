package v1

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// tenMinutePair starts a pair with tunnel t1 between them, its child SAs
// living 10 minutes (rekeyed when a test says), with transform tr; it
// returns A's configuration too.
func tenMinutePair(t *testing.T, tr string) (a, b *pairSide, w *sim, ca ike.Config) {
	ca, cb := baseConfig(), baseConfig()
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, tr)
	tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, tr)
	ta.Lifetime = ipsec.Lifetime{Time: 10 * time.Minute}
	tb.Lifetime = ta.Lifetime
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
	a, b, w = newPair(t, ca, cb)
	return a, b, w, ca
}

// upTenMinutePair is tenMinutePair with AES-GCM and t1 up on both
// sides; it returns one of A's SAs of t1 too.
func upTenMinutePair(t *testing.T) (a, b *pairSide, w *sim, ca ike.Config, sa ipsec.SAID) {
	a, b, w, ca = tenMinutePair(t, "esp-aes128-gcm16")
	a.d.Acquire("t1")
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	_, _, ids := a.inst.Tunnel("t1")
	return a, b, w, ca, ids[0]
}

// TestPeerDeleteKeepsReplacedInbound: when the initiator of a rekey
// switches to the new pair and deletes the old one, the responder keeps
// the old inbound SA for retireGrace, for the packets the initiator sent
// on it just before the switch, which can arrive after the delete; then
// it goes. Deleting it at once lost a probe in the 10,000-tunnel soak
// (the switch, and the delete processed, 1 ms apart).
func TestPeerDeleteKeepsReplacedInbound(t *testing.T) {
	t.Parallel()
	a, b, w, _ := tenMinutePair(t, "esp-aes128-gcm16")
	a.d.Acquire("t1")
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	var old ipsec.SAID // A's outbound SA, B's inbound one
	n := 0
	for id, sa := range a.inst.SAs() {
		if sa.Tunnel == "t1" && !sa.Inbound {
			old, n = id, n+1
		}
	}
	if n != 1 {
		t.Fatalf("%d outbound SAs before the rekey", n)
	}
	a.d.Expire(old, false) // rekey now
	w.waitUntil(t, 10*time.Second, "B took A's delete of the old pair", func() bool {
		st := tunnelStatus(t, b.d, "t1")
		return len(st.Children) == 1 && st.Children[0].InboundSPI != old.SPI
	})
	if _, err := b.inst.QuerySA(old); err != nil {
		t.Fatalf("B deleted its old inbound SA %s with A's delete: what A sent on it just before, still on its way, is lost", old)
	}
	w.sleep(t, retireGrace+time.Second)
	if _, err := b.inst.QuerySA(old); err == nil {
		t.Fatalf("B's old inbound SA %s still installed %v after A's delete", old, retireGrace+time.Second)
	}
}

// TestStopDeletesWaitingRekey: A's rekey has ended (B installed the new
// pair at QM3 and sends on it) but waits to take over when A's tunnel goes
// away, with the daemon (a restart) or by a reload. A must delete the new
// pair at B too, not only the old one: B was left sending into an SA A no
// longer had, until its soft lifetime (the one-minute soak's sampled
// tunnel, 21 s without an answer after the responder's restart).
func TestStopDeletesWaitingRekey(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"close", "reload"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			a, b, w, ca, sa := upTenMinutePair(t)
			a.d.Expire(sa, false) // rekey now
			var newIn ipsec.SAID  // A's new inbound SA, B's new outbound one
			w.waitUntil(t, 5*time.Second, "A's rekey waiting to take over, its pair at B", func() bool {
				a.d.mu.Lock()
				defer a.d.mu.Unlock()
				for in := range a.d.pendingIn {
					newIn = in
				}
				if newIn.SPI == 0 {
					return false
				}
				_, err := b.inst.QuerySA(newIn)
				return err == nil
			})
			switch how {
			case "close":
				a.d.Close()
			case "reload":
				ca.Tunnels = nil
				if err := a.d.Reconfigure(ca); err != nil {
					t.Fatal(err)
				}
			}
			w.waitUntil(t, 5*time.Second, "B deleted every SA of t1", func() bool {
				_, out, _ := b.inst.Tunnel("t1")
				return len(out) == 0
			})
			if _, err := b.inst.QuerySA(newIn); err == nil {
				t.Errorf("B still sends on %s, the rekey A dropped", newIn)
			}
		})
	}
}

// TestResponderGivingUpDeletesPair: B answers A's rekey (QM2 out, its new
// inbound SA in) but never gets QM3, and gives up: when it stops (the
// daemon closes) or when its retransmissions run out. A has the pair
// since QM2 and switches to it when the old one goes (takeOver) or when
// its wait is over, so B must delete it at A. It did not, and A sent into
// an SA B no longer had until its soft lifetime (the one-minute soak's
// sampled tunnel, 21 s without an answer).
func TestResponderGivingUpDeletesPair(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"close", "QM3 lost"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			a, b, w, _, sa := upTenMinutePair(t)
			var quick atomic.Int32
			w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
				if local.Addr() == addrA && len(msg) >= HeaderSize && Header(msg).Exchange() == ExchangeQuick && quick.Add(1) > 1 {
					return nil // QM3 and its resends; QM1 goes
				}
				return msg
			})
			a.d.Expire(sa, false) // rekey now
			w.waitUntil(t, 5*time.Second, "A's rekey waiting to take over", func() bool {
				a.d.mu.Lock()
				defer a.d.mu.Unlock()
				return len(a.d.pendingIn) > 0
			})
			if how == "close" {
				b.d.Close()
			}
			w.sleep(t, 10*time.Second) // B's retransmissions of QM2 run out; A's wait too
			for id, sa := range a.inst.SAs() {
				if _, err := b.inst.QuerySA(id); sa.Tunnel == "t1" && !sa.Inbound && err != nil {
					t.Errorf("A sends on %s, which B does not have", id)
				}
			}
		})
	}
}

// TestRemovedIKESASealsNothing: a quick mode that started on an IKE SA
// removed before its first message (a peer's delete, a restart's
// INITIAL-CONTACT) seals nothing and sends nothing, and an exchange made
// on the SA afterwards is canceled at once. Sealing with the zeroed keys
// panicked (the one-minute soak, once in 17 runs: a rekey's quick mode
// retried while the responder restarted).
func TestRemovedIKESASealsNothing(t *testing.T) {
	t.Parallel()
	a, _, w, _, _ := upTenMinutePair(t)
	a.d.mu.Lock()
	var sa *ikeSA
	for _, s := range a.d.sas {
		sa = s
	}
	a.d.mu.Unlock()
	ex := a.d.newExchange(sa, 7)
	a.d.removeIKESA(sa)
	sent := w.Received()
	if msg := ex.sealed(ExchangeQuick, []outPayload{{PayloadNonce, []byte("nonce")}}); msg != nil {
		t.Errorf("sealed %d bytes with the keys of a removed IKE SA", len(msg))
	}
	ex.send(nil)
	a.d.sendDeleteChild(sa, ipsec.SAID{SPI: 1})
	w.settle(t)
	if n := w.Received() - sent; n != 0 {
		t.Errorf("%d messages sent on a removed IKE SA", n)
	}
	if ex2 := a.d.newExchange(sa, 8); ex2.ctx.Err() == nil {
		t.Error("an exchange made on a removed IKE SA is not canceled")
	}
}
