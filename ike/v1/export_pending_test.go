package v1

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
)

// TestExportImportWaitingRekey: the IKE SA moves (restart, takeover) in
// the window of a rekey this end started, after QM3 and before its new
// pair takes over (switchLater). The importer switches to the new pair
// when the old daemon would have: it installs the new outbound SA (the
// SPI of B's new inbound SA), retires the old pair at B, and both ends
// agree on the keys, on the same IKE SA. Without the waiting pair in the
// record the importer knew only the old pair and went on sending on it,
// while B, which sends on the new pair from QM3 on, reached an inbound SA
// the importer did not know.
func TestExportImportWaitingRekey(t *testing.T) {
	t.Parallel()
	a, b, w, ca := tenMinutePair(t, "esp-aes128-hmac-sha")
	ta := ca.Tunnels[0]
	a.d.Acquire("t1")
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	phase1s := b.d.Status().Counters.Phase1Established
	_, out, ids := a.inst.Tunnel("t1")
	if len(out) != 1 {
		t.Fatalf("%d outbound SAs before the rekey", len(out))
	}
	a.d.Expire(ids[0], false) // rekey now
	var newIn, newOut, oldOut ipsec.SAID
	waiting := func() bool {
		a.d.mu.Lock()
		defer a.d.mu.Unlock()
		for in, old := range a.d.pendingIn {
			newIn, newOut, oldOut = in, old.successorOf().c.out, old.out
			return true
		}
		return false
	}
	w.waitUntil(t, 5*time.Second, "A's rekey waiting to take over", waiting)

	a2 := handOver(t, w, a, ca)
	if _, err := a2.inst.QuerySA(newOut); err == nil {
		t.Fatal("the new outbound SA installed at the import: the rekey was not waiting")
	}
	w.sleep(t, 2*rekeySwitchDelay+100*time.Millisecond) // the wait, QM3 resent once (nothing came in), the wait again

	if _, err := a2.inst.QuerySA(newOut); err != nil {
		t.Fatalf("the importer did not switch to the rekey's outbound SA %s: %v", newOut, err)
	}
	if _, err := a2.inst.QuerySA(oldOut); err == nil {
		t.Errorf("the old outbound SA %s still installed on the importer", oldOut)
	}
	st := tunnelStatus(t, a2.d, "t1")
	if len(st.Children) != 1 || st.Children[0].InboundSPI != newIn.SPI || st.Children[0].OutboundSPI != newOut.SPI ||
		!st.Children[0].Local.Equal(selector.Of(ta.LocalSelector)) {
		t.Errorf("the importer's child SAs: %+v, want the new pair %s/%s with the tunnel's selectors", st.Children, newIn, newOut)
	}
	w.sleep(t, 3*time.Second) // the old inbound SA's grace
	bst := tunnelStatus(t, b.d, "t1")
	if len(bst.Children) != 1 || bst.Children[0].InboundSPI != newOut.SPI {
		t.Errorf("B's child SAs: %+v, want only the new pair (the importer retired the old one)", bst.Children)
	}
	checkKeysMatch(t, a2, b, "t1", "t1")
	if c := b.d.Status().Counters; c.Phase1Established != phase1s {
		t.Errorf("B established %d phase 1s after the move", c.Phase1Established-phase1s)
	}
	if st.State != "up" || bst.State != "up" {
		t.Errorf("tunnel states: importer %s, B %s", st.State, bst.State)
	}
}

// TestWaitingPairSeed: the fuzz seed holding a waiting pair decodes, with
// its pair, and zeroes.
func TestWaitingPairSeed(t *testing.T) {
	data, err := os.ReadFile("testdata/fuzz/FuzzIKESARecord/waiting-pair")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	raw, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := readIKESA([]byte(raw), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(im.waiting) != 1 || len(im.waiting[0].out.CipherKey) == 0 || len(im.children) != 1 ||
		im.waiting[0].replaces != im.children[0].c.in {
		t.Fatalf("decoded %d waiting pairs for %d children", len(im.waiting), len(im.children))
	}
	im.zero()
	for _, b := range im.waiting[0].out.CipherKey {
		if b != 0 {
			t.Fatal("the waiting pair's key survived zero")
		}
	}
	if _, err := readIKESA([]byte(raw), 1); err == nil {
		t.Error("a format 2 record read as format 1")
	}
}

// TestImportedChildRekeys: the importer itself rekeys an imported child
// SA, with the child's selectors (a record carries them since format 2;
// a format 1 child gets its tunnel's): B accepts the quick mode on the
// same IKE SA and both ends agree on the new keys.
func TestImportedChildRekeys(t *testing.T) {
	t.Parallel()
	a, b, w, ca := tenMinutePair(t, "esp-aes128-hmac-sha")
	ta := ca.Tunnels[0]
	b.d.Acquire("t1") // B initiated: A, the importer, answered the quick mode
	w.waitEvent(t, a.lis, "up", "t1", 10*time.Second)
	w.waitEvent(t, b.lis, "up", "t1", 10*time.Second)
	phase1s, rekeys := b.d.Status().Counters.Phase1Established, tunnelStatus(t, b.d, "t1").Rekeys

	a2 := handOver(t, w, a, ca)
	st := tunnelStatus(t, a2.d, "t1")
	if len(st.Children) != 1 || !st.Children[0].Local.Equal(selector.Of(ta.LocalSelector)) ||
		!st.Children[0].Remote.Equal(selector.Of(ta.RemoteSelector)) {
		t.Fatalf("imported child SAs %+v, want the tunnel's selectors %v, %v", st.Children, ta.LocalSelector, ta.RemoteSelector)
	}
	_, _, ids := a2.inst.Tunnel("t1")
	a2.d.Expire(ids[0], false) // the importer rekeys now
	w.waitUntil(t, 10*time.Second, "the importer's rekey", func() bool { return tunnelStatus(t, b.d, "t1").Rekeys > rekeys })
	w.sleep(t, 3*time.Second) // the switch and the old pair's retirement
	checkKeysMatch(t, a2, b, "t1", "t1")
	if st := tunnelStatus(t, a2.d, "t1"); st.State != "up" || len(st.Children) != 1 || st.Children[0].InboundSPI == 0 {
		t.Errorf("the importer after its rekey: %+v", st)
	}
	if n := b.d.Status().Counters.Phase1Established; n != phase1s {
		t.Errorf("B established %d phase 1s", n-phase1s)
	}
}
