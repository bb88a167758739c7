//go:build dpdk && cgo

package dpdk

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/offload"
)

// TestDeviceStopped stops the device with ops queued. DPDK 22.11 swaps a
// stopped device's burst functions for stubs that take and return nothing,
// so queued ops never come back (the queue is stuck), Enqueue runs short,
// and the driver reports the device on Events.
func TestDeviceStopped(t *testing.T) {
	d := openT(t, 1, nil)
	tr := mustTransform(t, "esp-aes128-gcm16")
	ck, ak := keys(rand.New(rand.NewPCG(4, 4)), tr)
	s, err := d.NewSession(driver.SessionConfig{Transform: tr, CipherKey: ck, AuthKey: ak})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mk := func(n int) []*driver.Op {
		ops := make([]*driver.Op, n)
		for i := range ops {
			b := &driver.Buffer{Mem: make([]byte, bufSize), Off: 128}
			op, _ := espLayout{t: tr, spi: 1, seq: uint64(i + 1)}.build(b, make([]byte, 64), make([]byte, 16))
			op.Session = s
			ops[i] = &op
		}
		return ops
	}
	qp := d.QueuePair(0)
	if n := qp.Enqueue(mk(16)); n != 16 {
		t.Fatalf("enqueued %d", n)
	}
	if !d.stopDevice(d.DeviceFor(tr)) {
		t.Fatal("no such device")
	}
	out := make([]*driver.Op, 16)
	for range 1000 {
		if n := qp.Dequeue(out); n != 0 {
			t.Fatalf("a stopped device completed %d ops", n)
		}
	}
	if n := qp.Enqueue(mk(4)); n != 0 {
		t.Fatalf("a stopped device took %d ops", n)
	}
	if st := qp.Stats(); st.EnqueueErrors == 0 || st.Enqueued != 16 {
		t.Fatalf("stats %+v", st)
	}
	select {
	case ev := <-d.Events():
		if ev.Kind != driver.EventFault || ev.Driver != Name {
			t.Fatalf("event %+v", ev)
		}
		t.Log(ev.Err)
	default:
		t.Fatal("no fault event")
	}
}

// TestOffloadSpillsWhenDeviceStops: with the device stopped, an Engine that
// prefers dpdk spills the burst to the fallback engine, the driver's fault
// event moves the SA there for good, and later bursts are all delivered.
//
// The first burst races with offload's event watcher: when it moves the SA
// it closes the dpdk session while the Processor still submits ops on it,
// and those complete with InvalidSession (DropNoSA), as the driver contract
// says. Only the bursts after the move must be whole.
func TestOffloadSpillsWhenDeviceStops(t *testing.T) {
	d := openT(t, 1, nil)
	tr := mustTransform(t, "esp-aes128-hmac-sha")
	fa, fb := fallback.New(1), fallback.New(1)
	defer fa.Close()
	defer fb.Close()
	ea, _ := offload.New(offload.Config{Fallback: fa, Drivers: []driver.Driver{d}})
	eb, _ := offload.New(offload.Config{Fallback: fb})
	defer eb.Close()
	defer func() {
		for _, sa := range ea.SAs() {
			_ = ea.DeleteSA(sa.ID())
		}
	}()
	a, b := saPair(t, ea, eb, tr, offload.SAConfig{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")}, rand.New(rand.NewPCG(5, 5)))
	d.stopDevice(d.DeviceFor(tr))
	inner := testpkt.UDP(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1"), 1, 2, 300, 9)
	pkts := make([]*offload.Packet, 8)
	burst := func() (delivered, noSA int) {
		for i := range pkts {
			pkts[i] = offload.NewPacket()
			pkts[i].Reset(len(inner))
			copy(pkts[i].Buf.Bytes(), inner)
			pkts[i].SA = a.out
		}
		a.p.Encap(pkts)
		b.p.Decap(pkts)
		for _, pk := range pkts {
			switch {
			case pk.Drop == offload.NotDropped && bytes.Equal(pk.Buf.Bytes(), inner):
				delivered++
			case pk.Drop == offload.DropNoSA:
				noSA++
			default:
				t.Fatalf("drop %v", pk.Drop)
			}
		}
		return delivered, noSA
	}
	delivered, noSA := burst()
	t.Logf("first burst: %d delivered, %d lost to the session closed under it; fallbacks %v", delivered, noSA, ea.Fallbacks())
	if ea.Fallbacks()["queue-full"] == 0 && noSA == 0 {
		t.Fatalf("the stopped device neither spilled nor faulted: %v", ea.Fallbacks())
	}
	// The fault event moves the SA to the fallback engine for good.
	deadline := time.Now().Add(10 * time.Second)
	for name, _ := a.out.Driver(); name == Name; name, _ = a.out.Driver() {
		if time.Now().After(deadline) {
			t.Fatal("the SA stayed on the stopped device")
		}
		time.Sleep(time.Millisecond)
	}
	_, why := a.out.Driver()
	t.Log(why)
	if delivered, _ := burst(); delivered != len(pkts) {
		t.Fatalf("after the move: %d of %d delivered", delivered, len(pkts))
	}
}
