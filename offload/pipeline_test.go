package offload_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/ismgw/ism/driver/drivertest"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// run sends bursts through a pipeline of dir's SAs on e with workers
// lanes, as the gateway does: Fill takes them from the list, Deliver
// collects them. It returns the packets that came out, burst by burst, in
// the order they came, once the pipeline has ended.
func run(t *testing.T, e *offload.Engine, dir ipsec.Direction, workers int, bursts [][]*offload.Packet) [][]*offload.Packet {
	t.Helper()
	return runWith(t, e, dir, offload.PipelineConfig{Workers: workers}, bursts, nil)
}

// runWith is run with a configuration; atEnd, if set, is called when Fill
// has no more bursts.
func runWith(t *testing.T, e *offload.Engine, dir ipsec.Direction, c offload.PipelineConfig, bursts [][]*offload.Packet, atEnd func()) [][]*offload.Packet {
	t.Helper()
	var out [][]*offload.Packet
	next := 0
	c.Fill = func(b *offload.Burst) bool {
		if next == len(bursts) {
			if atEnd != nil {
				atEnd()
				atEnd = nil
			}
			return false
		}
		b.Pkts = append(b.Pkts, bursts[next]...)
		next++
		return true
	}
	c.Deliver = func(b *offload.Burst) { out = append(out, append([]*offload.Packet(nil), b.Pkts...)) }
	e.NewPipeline(dir, c).Wait()
	return out
}

// numbered returns an inner UDP packet of n bytes whose payload starts with
// id.
func numbered(n int, id uint32) []byte {
	b := inner(pairOpts{}, n, byte(id))
	binary.BigEndian.PutUint32(b[28:], id)
	header.IPv4(b).UpdateChecksum()
	return b
}

// split cuts pkts into bursts of random sizes between 1 and BurstSize.
func split(r *rand.Rand, pkts []*offload.Packet) [][]*offload.Packet {
	var out [][]*offload.Packet
	for len(pkts) > 0 {
		n := min(len(pkts), 1+r.IntN(offload.BurstSize))
		out = append(out, pkts[:n])
		pkts = pkts[n:]
	}
	return out
}

// TestPipelineOrder: one SA's packets through an outbound and an inbound
// pipeline with four workers each come out in order, with consecutive
// sequence numbers, and decapsulate to what went in; on the software engine
// and on a device that completes late and in a shuffled order.
func TestPipelineOrder(t *testing.T) {
	for _, drv := range []string{"software", "async"} {
		for _, name := range []string{"esp-aes128-gcm16", "esp-3des-hmac-sha", "ah-hmac-sha256"} {
			t.Run(drv+"/"+name, func(t *testing.T) {
				tr, _ := transform.Lookup(name)
				var a, b *side
				if drv == "async" {
					dev := drivertest.NewAsync("async", 256)
					t.Cleanup(func() { dev.Close() })
					a, b = newSide(t, dev), newSide(t, dev)
				} else {
					a, b = newSide(t), newSide(t)
				}
				pair(t, tr, pairOpts{window: 1024, esn: true}, a, b)
				if got, _ := a.sa.Driver(); got != drv {
					t.Fatalf("bound to %s", got)
				}
				r := rand.New(rand.NewPCG(3, 4))
				const n = 1500
				var want [][]byte
				var pkts []*offload.Packet
				for i := range n {
					in := numbered(40+r.IntN(1200), uint32(i))
					want = append(want, in)
					pk := packet(in)
					pk.SA = a.sa
					pkts = append(pkts, pk)
				}
				out := run(t, a.e, ipsec.Outbound, 4, split(r, pkts))
				var wire []*offload.Packet
				for _, burst := range out {
					wire = append(wire, burst...)
				}
				if len(wire) != n {
					t.Fatalf("%d packets came out of %d", len(wire), n)
				}
				for i, pk := range wire {
					if pk.Drop != offload.NotDropped {
						t.Fatalf("packet %d dropped: %v", i, pk.Drop)
					}
					if pk != pkts[i] {
						t.Fatalf("packet %d came out in place of %d", i, slicesIndex(pkts, pk))
					}
					if got := seqOf(pk.Buf.Bytes(), tr); got != uint32(i+1) {
						t.Fatalf("packet %d has sequence number %d", i, got)
					}
				}
				for _, burst := range run(t, b.e, ipsec.Inbound, 4, split(r, wire)) {
					for _, pk := range burst {
						if pk.Drop != offload.NotDropped {
							t.Fatalf("inbound drop %v", pk.Drop)
						}
					}
				}
				for i, pk := range wire {
					if !bytes.Equal(pk.Buf.Bytes(), want[i]) {
						t.Fatalf("packet %d decapsulated to something else (id %d)", i, binary.BigEndian.Uint32(pk.Buf.Bytes()[28:]))
					}
				}
				if got := b.sa.Counters().Packets.Load(); got != n {
					t.Errorf("inbound SA counted %d packets", got)
				}
			})
		}
	}
}

func slicesIndex(pkts []*offload.Packet, pk *offload.Packet) int {
	for i, p := range pkts {
		if p == pk {
			return i
		}
	}
	return -1
}

// seqOf returns the sequence number of an outer IPv4 ESP or AH packet.
func seqOf(pkt []byte, tr transform.Transform) uint32 {
	if tr.Protocol == transform.AH {
		return header.AH(pkt[20:]).Seq()
	}
	return header.ESP(pkt[20:]).Seq()
}

// sealed returns n packets encapsulated by a's SA with sequence numbers
// 1..n (index i holds number i+1).
func sealed(t *testing.T, a *side, n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, encap(t, a, numbered(100, uint32(i+1))))
	}
	return out
}

// TestPipelineReplay: the anti-replay window under a pipeline is exact:
// duplicates inside a burst and across bursts in flight at once are
// dropped after the first copy verifies, and the window's edges hold.
func TestPipelineReplay(t *testing.T) {
	for _, esn := range []bool{false, true} {
		a, b := newSide(t), newSide(t)
		const w = 64
		pair(t, gcm, pairOpts{window: w, esn: esn}, a, b)
		wire := sealed(t, a, 300)
		type step struct {
			seqs  []int // sequence numbers, one burst
			drops []offload.DropReason
		}
		ok, dup, old := offload.NotDropped, offload.DropReplay, offload.DropOutsideWindow
		steps := []step{
			{[]int{1, 2, 2, 3}, []offload.DropReason{ok, ok, dup, ok}},
			{[]int{2, 4, 3}, []offload.DropReason{dup, ok, dup}}, // in flight with the first
			{[]int{200}, []offload.DropReason{ok}},
			{[]int{200 - w + 1, 200 - w, 199, 199}, []offload.DropReason{ok, old, ok, dup}},
			{[]int{200 - w + 1, 201, 201, 5}, []offload.DropReason{dup, ok, dup, old}},
		}
		var bursts [][]*offload.Packet
		for _, s := range steps {
			var pkts []*offload.Packet
			for _, q := range s.seqs {
				pkts = append(pkts, packet(wire[q-1]))
			}
			bursts = append(bursts, pkts)
		}
		// Every burst is prepared before any is finished: each one's
		// pre-check sees none of the others' updates. Finishing waits
		// until the intake has seen the end of the input, after the last
		// burst's prepare.
		c := offload.PipelineConfig{Workers: 2, Depth: len(steps) + 1}
		ended := make(chan struct{})
		offload.HoldFinish(&c, func() { <-ended })
		out := runWith(t, b.e, ipsec.Inbound, c, bursts, func() { close(ended) })
		var replays, outside uint64
		for i, s := range steps {
			for j, pk := range out[i] {
				if pk.Drop != s.drops[j] {
					t.Errorf("esn %v: burst %d packet %d (seq %d): %v, want %v", esn, i, j, s.seqs[j], pk.Drop, s.drops[j])
				}
				if pk.Drop == ok && binary.BigEndian.Uint32(pk.Buf.Bytes()[28:]) != uint32(s.seqs[j]) {
					t.Errorf("burst %d packet %d: wrong payload", i, j)
				}
				switch pk.Drop {
				case dup:
					replays++
				case old:
					outside++
				}
			}
		}
		st := b.sa.Counters()
		if st.Drops(dup) != replays || st.Drops(old) != outside || b.sa.Seq() != 201 {
			t.Errorf("SA counters: %d replays, %d outside, top %d", st.Drops(dup), st.Drops(old), b.sa.Seq())
		}
		if g := b.e.Counters(); g.Drops[dup] != replays || g.Drops[old] != outside {
			t.Errorf("global counters %v", g.DropMap())
		}
	}
}

// TestPipelineLifetimeOutbound: with five bursts of 128 on four lanes,
// exactly the first 300 packets go out (the 300th reaches the hard limit and
// is sent), the soft limit fires once at the 100th, the hard once, and the
// rest are counted as lifetime drops.
func TestPipelineLifetimeOutbound(t *testing.T) {
	for _, bytesLimit := range []bool{false, true} {
		a, b := newSide(t), newSide(t)
		o := pairOpts{window: 1024, life: ipsec.Limits{Soft: ipsec.Lifetime{Packets: 100}, Hard: ipsec.Lifetime{Packets: 300}}}
		size := 200 // UDP payload: 228-byte inner packets
		if bytesLimit {
			o.life = ipsec.Limits{Soft: ipsec.Lifetime{Bytes: 100 * 228}, Hard: ipsec.Lifetime{Bytes: 300 * 228}}
		}
		pair(t, gcm, o, a, b)
		var bursts [][]*offload.Packet
		for i := range 5 {
			var pkts []*offload.Packet
			for j := range offload.BurstSize {
				pk := packet(numbered(size, uint32(i*offload.BurstSize+j)))
				pk.SA = a.sa
				pkts = append(pkts, pk)
			}
			bursts = append(bursts, pkts)
		}
		var all []*offload.Packet
		for _, burst := range bursts {
			all = append(all, burst...)
		}
		sent := 0
		for _, burst := range run(t, a.e, ipsec.Outbound, 4, bursts) {
			for _, pk := range burst {
				switch {
				case pk.Drop == offload.NotDropped:
					if pk != all[sent] || seqOf(pk.Buf.Bytes(), gcm) != uint32(sent+1) {
						t.Fatalf("packet %d went out as number %d", slicesIndex(all, pk), sent+1)
					}
					sent++
				case pk.Drop != offload.DropLifetime:
					t.Fatalf("drop %v", pk.Drop)
				}
			}
		}
		evs := a.events()
		cause := offload.CausePackets
		if bytesLimit {
			cause = offload.CauseBytes
		}
		if sent != 300 || len(evs) != 2 || evs[0].Kind != offload.EventSoftExpire || evs[1].Kind != offload.EventHardExpire || evs[0].Cause != cause || evs[1].Cause != cause {
			t.Fatalf("bytes %v: %d sent, events %+v", bytesLimit, sent, evs)
		}
		st := a.sa.Counters()
		if st.Packets.Load() != 300 || st.Drops(offload.DropLifetime) != 5*offload.BurstSize-300 {
			t.Errorf("counters: %d packets, %d lifetime drops", st.Packets.Load(), st.Drops(offload.DropLifetime))
		}
	}
}

// TestPipelineLifetimeInbound: an inbound SA with a hard limit of 250
// packets delivers exactly the first 250 of 400 valid packets in bursts in
// flight together, and fires each event once.
func TestPipelineLifetimeInbound(t *testing.T) {
	a, b := newSide(t), newSide(t)
	pair(t, gcm, pairOpts{window: 1024, life: ipsec.Limits{Soft: ipsec.Lifetime{Packets: 50}, Hard: ipsec.Lifetime{Packets: 250}}}, a, b)
	// a's outbound SA has the same limits: take its packets before it
	// expires, from a second SA pair with the same keys but no limits.
	a2 := newSide(t)
	ck, ak := a.keys[0], a.keys[1]
	out, err := a2.e.AddSA(offload.SAConfig{SPI: 0x1000, Transform: gcm, Direction: ipsec.Outbound, Src: v4a, Dst: v4b, CipherKey: ck, AuthKey: ak})
	if err != nil {
		t.Fatal(err)
	}
	a2.sa = out
	wire := sealed(t, a2, 400)
	var pkts []*offload.Packet
	for _, w := range wire {
		pkts = append(pkts, packet(w))
	}
	delivered := 0
	for _, burst := range run(t, b.e, ipsec.Inbound, 2, split(rand.New(rand.NewPCG(5, 6)), pkts)) {
		for _, pk := range burst {
			switch pk.Drop {
			case offload.NotDropped:
				delivered++
				if binary.BigEndian.Uint32(pk.Buf.Bytes()[28:]) != uint32(delivered) {
					t.Fatalf("delivery %d is not packet %d", delivered, delivered)
				}
			case offload.DropLifetime:
			default:
				t.Fatalf("drop %v", pk.Drop)
			}
		}
	}
	evs := b.events()
	if delivered != 250 || len(evs) != 2 || evs[0].Kind != offload.EventSoftExpire || evs[1].Kind != offload.EventHardExpire {
		t.Fatalf("%d delivered, events %+v", delivered, evs)
	}
	if n := b.sa.Counters().Packets.Load(); n != 250 {
		t.Errorf("SA counted %d packets", n)
	}
}

// TestPipelineDrops: bad packets in a burst are dropped with their reasons,
// counted per SA and globally, and the good ones around them go through.
func TestPipelineDrops(t *testing.T) {
	a, b := newSide(t), newSide(t)
	pair(t, gcm, pairOpts{window: 1024}, a, b)
	wire := sealed(t, a, 4)
	tampered := bytes.Clone(wire[1])
	tampered[len(tampered)-1] ^= 1
	unknown := bytes.Clone(wire[2])
	binary.BigEndian.PutUint32(unknown[20:], 0x9999)
	pkts := []*offload.Packet{packet(wire[0]), packet(tampered), packet(unknown), packet([]byte{0x45, 0}), packet(wire[3])}
	out := run(t, b.e, ipsec.Inbound, 2, [][]*offload.Packet{pkts})
	want := []offload.DropReason{offload.NotDropped, offload.DropICV, offload.DropNoSA, offload.DropMalformed, offload.NotDropped}
	for i, pk := range out[0] {
		if pk.Drop != want[i] {
			t.Errorf("packet %d: %v, want %v", i, pk.Drop, want[i])
		}
	}
	g := b.e.Counters()
	if g.Packets != 2 || g.Drops[offload.DropICV] != 1 || g.Drops[offload.DropNoSA] != 1 || g.Drops[offload.DropMalformed] != 1 {
		t.Errorf("global counters: %d packets, drops %v", g.Packets, g.DropMap())
	}
	if n := b.sa.Counters().Drops(offload.DropICV); n != 1 {
		t.Errorf("SA counted %d ICV failures", n)
	}
}

// TestPipelineEnd: once Fill reports the input closed, the bursts taken in
// are delivered, Wait returns, no goroutine is left behind, SetWorkers
// starts none, and the lanes' counts stay in the engine's counters.
func TestPipelineEnd(t *testing.T) {
	a, b := newSide(t), newSide(t)
	pair(t, gcm, pairOpts{}, a, b)
	before := runtime.NumGoroutine()
	var bursts [][]*offload.Packet
	for i := range 3 {
		var pkts []*offload.Packet
		for j := range 10 {
			pk := packet(numbered(60, uint32(i*10+j)))
			pk.SA = a.sa
			pkts = append(pkts, pk)
		}
		bursts = append(bursts, pkts)
	}
	next := 0
	n := 0
	pl := a.e.NewPipeline(ipsec.Outbound, offload.PipelineConfig{Workers: 3,
		Fill: func(b *offload.Burst) bool {
			if next == len(bursts) {
				return false
			}
			b.Pkts = append(b.Pkts, bursts[next]...)
			next++
			return true
		},
		Deliver: func(b *offload.Burst) {
			for _, pk := range b.Pkts {
				if pk.Drop == offload.NotDropped {
					n++
				}
			}
		}})
	pl.Wait()
	if n != 30 {
		t.Errorf("%d packets delivered, want 30", n)
	}
	pl.SetWorkers(4)
	pl.Wait()
	if g := a.e.Counters(); g.Packets != 30 {
		t.Errorf("engine counted %d packets", g.Packets)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, g, buf[:runtime.Stack(buf, true)])
	}
}

// TestPipelineSetWorkers: lanes come and go while one SA's packets flow
// (Fill changes the number of lanes every ten bursts), and the packets
// still come out in order with consecutive sequence numbers.
func TestPipelineSetWorkers(t *testing.T) {
	a, b := newSide(t), newSide(t)
	pair(t, gcm, pairOpts{window: 1024}, a, b)
	const bursts = 300
	var pl *offload.Pipeline
	ready := make(chan struct{})
	k, want, seq := 0, 0, uint32(0)
	src := numbered(100, 0)
	c := offload.PipelineConfig{Workers: 1,
		NewBurst: func(bu *offload.Burst) {
			pkts := make([]*offload.Packet, offload.BurstSize)
			for i := range pkts {
				pkts[i] = offload.NewPacket()
			}
			bu.Owner = pkts
		},
		Fill: func(bu *offload.Burst) bool {
			<-ready
			if k == bursts {
				return false
			}
			if k%10 == 5 {
				pl.SetWorkers(1 + k/10%4)
			}
			n := 1 + k*7%offload.BurstSize
			for _, pk := range bu.Owner.([]*offload.Packet)[:n] {
				pk.Reset(len(src))
				copy(pk.Buf.Bytes(), src)
				pk.SA = a.sa
				bu.Pkts = append(bu.Pkts, pk)
			}
			want += n
			k++
			return true
		},
		Deliver: func(bu *offload.Burst) {
			for _, pk := range bu.Pkts {
				if pk.Drop != offload.NotDropped {
					t.Errorf("drop %v", pk.Drop)
					continue
				}
				if got := seqOf(pk.Buf.Bytes(), gcm); got != seq+1 {
					t.Errorf("sequence number %d after %d", got, seq)
				}
				seq++
			}
		}}
	pl = a.e.NewPipeline(ipsec.Outbound, c)
	close(ready)
	pl.Wait()
	if int(seq) != want || a.sa.Seq() != uint64(want) {
		t.Errorf("%d packets came out in order, SA at %d; want %d", seq, a.sa.Seq(), want)
	}
}
