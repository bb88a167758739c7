package offload_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/driver/drivertest"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

var gcm, _ = transform.Lookup("esp-aes128-gcm16")

func TestBindRefused(t *testing.T) {
	for _, c := range []struct {
		drv    driver.Driver
		want   string
		reason string
	}{
		{&drivertest.Refusing{Label: "accel"}, "refused", "accel does not support esp-aes128-gcm16"},
		{&drivertest.Refusing{Label: "accel", Advertise: true}, "session-failed", "accel refused the session"},
	} {
		a, b := newSide(t, c.drv), newSide(t)
		pair(t, gcm, pairOpts{window: 64}, a, b)
		name, reason := a.sa.Driver()
		if name != "software" || !strings.Contains(reason, c.reason) {
			t.Errorf("bound to %s (%s), want software because %q", name, reason, c.reason)
		}
		if n := a.e.Fallbacks()[c.want]; n != 1 {
			t.Errorf("fallbacks %v, want %s=1", a.e.Fallbacks(), c.want)
		}
		if _, drop := decap(b, encap(t, a, inner(pairOpts{}, 50, 1))); drop != offload.NotDropped {
			t.Error(drop)
		}
	}
}

func TestBindUnavailable(t *testing.T) {
	a := newSide(t)
	ck, _ := keysFor(gcm, 1)
	sa, err := a.e.AddSA(offload.SAConfig{SPI: 0x5000, Transform: gcm, Src: v4a, Dst: v4b, CipherKey: ck, Driver: "dpdk"})
	if err != nil {
		t.Fatal(err)
	}
	if name, reason := sa.Driver(); name != "software" || !strings.Contains(reason, "driver dpdk is not available") {
		t.Errorf("%s: %s", name, reason)
	}
}

// TestAsyncOrder: a device that completes late and out of order; every
// packet of a burst over three SAs comes back in submission order and
// decapsulates.
func TestAsyncOrder(t *testing.T) {
	dev := drivertest.NewAsync("async", 256)
	a, b := newSide(t, dev), newSide(t, dev)
	trs := []string{"esp-aes128-gcm16", "esp-3des-hmac-sha", "ah-hmac-sha256"}
	var outs []*offload.SA
	for i, name := range trs {
		tr, _ := transform.Lookup(name)
		ck, ak := keysFor(tr, byte(i))
		c := offload.SAConfig{SPI: uint32(0x2000 + i), Transform: tr, Src: v4a, Dst: v4b, CipherKey: ck, AuthKey: ak, ReplayWindow: 1024}
		c.Direction = ipsec.Outbound
		sa, err := a.e.AddSA(c)
		if err != nil {
			t.Fatal(err)
		}
		if name, _ := sa.Driver(); name != "async" {
			t.Fatalf("bound to %s", name)
		}
		outs = append(outs, sa)
		c.Direction = ipsec.Inbound
		if _, err := b.e.AddSA(c); err != nil {
			t.Fatal(err)
		}
	}
	var pkts []*offload.Packet
	var want [][]byte
	for i := range offload.BurstSize {
		in := inner(pairOpts{}, 20+i, byte(i))
		want = append(want, in)
		pk := packet(in)
		pk.SA = outs[i%3]
		pkts = append(pkts, pk)
	}
	a.p.Encap(pkts)
	for i, pk := range pkts {
		if pk.Drop != offload.NotDropped {
			t.Fatalf("packet %d dropped: %v", i, pk.Drop)
		}
	}
	b.p.Decap(pkts)
	for i, pk := range pkts {
		if pk.Drop != offload.NotDropped || !bytes.Equal(pk.Buf.Bytes(), want[i]) {
			t.Fatalf("packet %d: drop %v, order or content wrong", i, pk.Drop)
		}
	}
	if st := dev.Stats(); st.Enqueued != 2*offload.BurstSize || st.Dequeued != st.Enqueued {
		t.Errorf("device stats %+v", st)
	}
}

// TestQueueFullAndStuck: a device that takes 8 ops and never completes them.
// The rest of the burst spills to the software engine; the 8 are dropped as
// driver faults when the queue is declared stuck, and the SA moves to the
// software engine for good.
func TestQueueFullAndStuck(t *testing.T) {
	dev := drivertest.NewAsync("stuck", 8)
	dev.Stuck = true
	a, b := newSide(t, dev), newSide(t)
	pair(t, gcm, pairOpts{window: 1024}, a, b)
	var pkts []*offload.Packet
	for i := range 40 {
		pk := packet(inner(pairOpts{}, 30, byte(i)))
		pk.SA = a.sa
		pkts = append(pkts, pk)
	}
	a.p.Encap(pkts)
	var ok, faulted int
	for _, pk := range pkts {
		switch pk.Drop {
		case offload.NotDropped:
			ok++
			if _, drop := decap(b, pk.Buf.Bytes()); drop != offload.NotDropped {
				t.Fatalf("spilled packet does not decapsulate: %v", drop)
			}
		case offload.DropDriverFault:
			faulted++
			if pk.Buf != nil {
				t.Error("buffer of a packet lost to a stuck queue was not abandoned")
			}
		default:
			t.Fatal(pk.Drop)
		}
	}
	if ok != 32 || faulted != 8 {
		t.Fatalf("%d ok, %d faulted; want 32 and 8", ok, faulted)
	}
	fb := a.e.Fallbacks()
	if fb["queue-full"] != 32 || fb["fault"] != 1 {
		t.Errorf("fallbacks %v", fb)
	}
	if name, reason := a.sa.Driver(); name != "software" || !strings.Contains(reason, "stuck") {
		t.Errorf("after stuck: %s %s", name, reason)
	}
}

// TestOpFault: ops that complete with Fault drop their packets and move the
// SA to the software engine; the next burst goes through.
func TestOpFault(t *testing.T) {
	dev := drivertest.NewAsync("faulty", 256)
	dev.Fault, dev.FaultAfter = true, 5
	a, b := newSide(t, dev), newSide(t)
	pair(t, gcm, pairOpts{window: 1024}, a, b)
	burst := func() (ok, bad int) {
		var pkts []*offload.Packet
		for i := range 16 {
			pk := packet(inner(pairOpts{}, 30, byte(i)))
			pk.SA = a.sa
			pkts = append(pkts, pk)
		}
		a.p.Encap(pkts)
		for _, pk := range pkts {
			if pk.Drop == offload.NotDropped {
				ok++
			} else if pk.Drop == offload.DropDriverFault {
				bad++
			}
		}
		return ok, bad
	}
	if ok, bad := burst(); ok != 5 || bad != 11 {
		t.Fatalf("first burst: %d ok, %d faulted", ok, bad)
	}
	if name, _ := a.sa.Driver(); name != "software" {
		t.Fatalf("still on %s", name)
	}
	if ok, _ := burst(); ok != 16 {
		t.Fatalf("after the move: %d ok", ok)
	}
	if a.sa.Counters().Drops(offload.DropDriverFault) != 11 || a.e.Fallbacks()["fault"] != 1 {
		t.Errorf("counters: %d faults, fallbacks %v", a.sa.Counters().Drops(offload.DropDriverFault), a.e.Fallbacks())
	}
}

// TestDeviceFaultEvent: a fault reported on the driver's event channel moves
// its SAs to the software engine.
func TestDeviceFaultEvent(t *testing.T) {
	dev := drivertest.NewAsync("dev", 64)
	a, b := newSide(t, dev), newSide(t)
	pair(t, gcm, pairOpts{window: 64}, a, b)
	dev.PostFault(errors.New("device lost"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if name, reason := a.sa.Driver(); name == "software" && strings.Contains(reason, "dev reported a fault") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SA not moved after the device fault")
		}
		time.Sleep(time.Millisecond)
	}
	if _, drop := decap(b, encap(t, a, inner(pairOpts{}, 10, 1))); drop != offload.NotDropped {
		t.Fatal(drop)
	}
}
