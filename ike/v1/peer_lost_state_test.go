package v1

import (
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// A peer that restarts without its deletes reaching this end (a crash,
// or deletes lost on a busy path: 891 of 10,000 tunnels in ismbench soak
// when the responder restarted) no longer has the IKE SA this end holds.
// Quick modes on it go unanswered (the new process drops messages for
// cookies it does not know); once one has, the IKE SA is dropped, so that
// the next attempt negotiates a new phase 1, instead of every later rekey
// and acquire failing on it until its lifetime (a day) ends.

// lostStatePair brings t1 up between a and b, then restarts b with its
// deletes lost: the returned side is the new b, knowing nothing.
func lostStatePair(t *testing.T) (a, b2 *pairSide, w *sim) {
	t.Helper()
	ca, cb := baseConfig(), baseConfig()
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-hmac-sha")
	tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")
	ta.Lifetime = ipsec.Lifetime{Time: 10 * time.Minute}
	tb.Lifetime = ta.Lifetime
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
	w = newSim(t)
	a = newSide(t, w, ca, addrA, 0x1000)
	b := newSide(t, w, cb, addrB, 0x2000)
	a.d.Acquire("t1")
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	bl := newBlocker(w)
	bl.set(addrB, true)
	if err := b.d.Close(); err != nil {
		t.Fatal(err)
	}
	w.settle(t)
	b2 = newSide(t, w, cb, addrB, 0x3000)
	bl.set(addrB, false)
	return a, b2, w
}

// TestPairPeerLostStateRekey: the rekey of a tunnel whose peer lost its
// state fails on the old IKE SA, and its retry (the back-off's, while the
// old SA lives) brings the tunnel up with the new peer before the old SA
// expires: no traffic needed, the tunnel never goes down on this end.
func TestPairPeerLostStateRekey(t *testing.T) {
	t.Parallel()
	a, b2, w := lostStatePair(t)
	w.waitEvent(t, b2.lis, "up", "t1", 10*time.Minute)
	for _, e := range a.lis.Events() {
		if e.Kind == "down" {
			t.Errorf("A's tunnel went down (%s) before the rekey came through", e.Reason)
		}
	}
	checkPairIndex(t, a.d)
}

// TestPairPeerLostStateAcquire: a tunnel down on this end (its SA
// expired) whose IKE SA the peer lost comes up again on the next acquire
// after one failed on that IKE SA, as traffic asks, within the back-off.
func TestPairPeerLostStateAcquire(t *testing.T) {
	t.Parallel()
	a, b2, w := lostStatePair(t)
	_, _, ids := a.inst.Tunnel("t1")
	a.d.Expire(ids[0], true)
	w.waitEvent(t, a.lis, "down", "t1", 5*time.Second)
	a.d.Acquire("t1")
	w.waitEvent(t, a.lis, "failed", "t1", time.Minute)
	// Traffic keeps asking, once a second.
	for range 60 {
		if tunnelStatus(t, b2.d, "t1").State == "up" {
			break
		}
		a.d.Acquire("t1")
		w.sleep(t, time.Second)
	}
	if st := tunnelStatus(t, b2.d, "t1"); st.State != "up" {
		t.Fatalf("t1 is %s on the restarted peer after a minute of acquires; A: %+v", st.State, tunnelStatus(t, a.d, "t1"))
	}
	checkPairIndex(t, a.d)
}
