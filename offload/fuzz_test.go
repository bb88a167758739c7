package offload_test

// Decapsulation fuzzers. Each input is an outer IP packet handed to a
// Processor whose engine has inbound SAs for several transforms, SPIs, modes
// and families (and, for ESP, the SAs of the known-answer vectors), in one
// burst with a valid packet behind it. Invariants:
//
//   - no panic; every packet either decapsulates or gets a DropReason;
//   - the result does not depend on the bytes outside the packet: the burst
//     runs twice, on fresh engines, with the buffers' headroom and tailroom
//     filled differently, and both runs must agree;
//   - a decapsulated packet lies inside the input and is a well-formed IP
//     packet whose length fields match;
//   - the valid packet behind is delivered whatever came before it;
//   - the global and per-SA counters add up to exactly what happened.
//
// Run: go test -run XXX -fuzz FuzzESPDecap -fuzztime 60s ./offload

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
)

// fuzzSA is an inbound SA the fuzzers install; its outbound twin makes
// the seeds.
type fuzzSA struct {
	tr        string
	mode      ipsec.Mode
	v6        bool
	natt, esn bool
	spi       uint32
}

var (
	espFuzzSAs = []fuzzSA{
		{tr: "esp-aes128-gcm16", mode: ipsec.Tunnel, spi: 0x1001},
		{tr: "esp-3des-hmac-sha", mode: ipsec.Transport, spi: 0x1002},
		{tr: "esp-null-hmac-md5", mode: ipsec.Tunnel, v6: true, esn: true, spi: 0x1003},
		{tr: "esp-aes256-hmac-sha256", mode: ipsec.Tunnel, natt: true, spi: 0x1004},
		{tr: "esp-aes128-gcm8", mode: ipsec.Transport, v6: true, spi: 0x1005},
		{tr: "esp-chacha20-poly1305", mode: ipsec.Transport, natt: true, esn: true, spi: 0x1006},
		{tr: "esp-aes192", mode: ipsec.Tunnel, spi: 0x1007}, // no ICV: the padding check is all there is
		{tr: "esp-des-hmac-sha512", mode: ipsec.Tunnel, v6: true, spi: 0x1008},
	}
	ahFuzzSAs = []fuzzSA{
		{tr: "ah-hmac-sha", mode: ipsec.Tunnel, spi: 0x2001},
		{tr: "ah-hmac-sha256", mode: ipsec.Transport, v6: true, spi: 0x2002},
		{tr: "ah-hmac-md5", mode: ipsec.Tunnel, esn: true, spi: 0x2003},
		{tr: "ah-hmac-sha512", mode: ipsec.Tunnel, v6: true, spi: 0x2004},
		{tr: "ah-hmac-sha384", mode: ipsec.Transport, spi: 0x2005},
	}
)

// esnBase is where the ESN SAs' sequence numbers start: high bits 1.
const esnBase = 1 << 32

func (s fuzzSA) config(t testing.TB, dir ipsec.Direction) offload.SAConfig {
	tr := mustTransform(t, s.tr)
	src, dst := local4, peer4
	if s.v6 {
		src, dst = local6, peer6
	}
	label := fmt.Sprintf("fuzz/%s/%08x", s.tr, s.spi)
	return offload.SAConfig{
		SPI: s.spi, Transform: tr, Direction: dir, Mode: s.mode, Src: src, Dst: dst,
		UDPEncap: s.natt, ESN: s.esn, ReplayWindow: 64,
		CipherKey: keyFor(label+"/cipher", tr.CipherKeyLen()), AuthKey: keyFor(label+"/auth", tr.AuthKeyLen()),
	}
}

func (s fuzzSA) inner(seed byte) []byte {
	src, dst := local4, peer4
	switch {
	case s.mode == ipsec.Transport && s.v6:
		src, dst = local6, peer6
	case s.mode == ipsec.Tunnel && seed%2 == 0:
		src, dst = inSrc4, inDst4
	case s.mode == ipsec.Tunnel:
		src, dst = inSrc6, inDst6
	}
	return testpkt.UDP(src, dst, 7, 9, int(seed)*3, seed)
}

// decapRig holds what every fuzz input is run against.
type decapRig struct {
	fb        *fallback.Driver
	sas       []fuzzSA
	kats      []espKAT // vector SAs, one per SA identity
	good      []byte   // a valid packet for sas[0]
	goodInner []byte
}

func newDecapRig(f testing.TB, sas []fuzzSA, kats []espKAT) *decapRig {
	r := &decapRig{fb: fallback.New(1), sas: sas}
	f.Cleanup(func() { _ = r.fb.Close() })
	seen := map[ipsec.SAID]bool{}
	for _, k := range kats {
		id := ipsec.SAID{SPI: k.spi, Protocol: k.tr.Protocol, Dst: header.IPv4(k.outer).Dst()}
		if !seen[id] {
			seen[id] = true
			r.kats = append(r.kats, k)
		}
	}
	// The valid packet uses a sequence number no seed uses.
	e := newEngine(f)
	sa, err := e.AddSA(sas[0].config(f, ipsec.Outbound))
	if err != nil {
		f.Fatal(err)
	}
	offload.SetSeq(sa, 1<<20)
	r.goodInner = sas[0].inner(77)
	pk := newPacket(r.goodInner)
	pk.SA = sa
	e.NewProcessor().Encap([]*offload.Packet{pk})
	if pk.Drop != offload.NotDropped {
		f.Fatal(pk.Drop)
	}
	r.good = append([]byte(nil), pk.Buf.Bytes()...)
	return r
}

// seeds returns packets the rig's SAs accept: two per SA.
func (r *decapRig) seeds(f testing.TB) [][]byte {
	e := newEngine(f)
	p := e.NewProcessor()
	var out [][]byte
	for _, s := range r.sas {
		sa, err := e.AddSA(s.config(f, ipsec.Outbound))
		if err != nil {
			f.Fatal(err)
		}
		if s.esn {
			offload.SetSeq(sa, esnBase)
		}
		for i := byte(0); i < 2; i++ {
			pk := newPacket(s.inner(byte(s.spi) + i))
			pk.SA = sa
			p.Encap([]*offload.Packet{pk})
			if pk.Drop != offload.NotDropped {
				f.Fatalf("%s: %v", s.tr, pk.Drop)
			}
			out = append(out, append([]byte(nil), pk.Buf.Bytes()...))
		}
	}
	return out
}

// outcome is what a burst did, in a form two runs can be compared by.
type outcome struct {
	drop   [2]offload.DropReason
	nh     [2]uint8
	sa     [2]ipsec.SAID
	out    [2][]byte
	global offload.CounterValues
	perSA  map[ipsec.SAID]offload.CounterValues
}

// engine returns a fresh engine with the rig's inbound SAs.
func (r *decapRig) engine(t *testing.T) *offload.Engine {
	e, err := offload.New(offload.Config{Fallback: r.fb})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.sas {
		sa, err := e.AddSA(s.config(t, ipsec.Inbound))
		if err != nil {
			t.Fatal(err)
		}
		if s.esn {
			offload.SetReplayTop(sa, esnBase)
		}
	}
	for _, k := range r.kats {
		sa := k.addSA(t, e, ipsec.Inbound)
		if k.esn {
			offload.SetReplayTop(sa, k.seq-1)
		}
	}
	return e
}

// run decapsulates data and the valid packet in one burst, with fill in
// every byte of the buffers outside the packets.
func (r *decapRig) run(t *testing.T, data []byte, fill byte) outcome {
	e := r.engine(t)
	defer e.Close()
	pks := [2]*offload.Packet{offload.NewPacket(), offload.NewPacket()}
	for i, b := range [][]byte{data, r.good} {
		m := pks[i].Buf.Mem
		for j := range m {
			m[j] = fill
		}
		pks[i].Reset(len(b))
		copy(pks[i].Buf.Bytes(), b)
	}
	e.NewProcessor().Decap(pks[:])
	o := outcome{global: e.Counters(), perSA: map[ipsec.SAID]offload.CounterValues{}}
	for _, sa := range e.SAs() {
		o.perSA[sa.ID()] = sa.Counters().Snapshot()
	}
	var want offload.CounterValues
	wantSA := map[ipsec.SAID]*offload.CounterValues{}
	for i, pk := range pks {
		o.drop[i], o.nh[i] = pk.Drop, pk.NextHeader
		if int(pk.Drop) >= offload.NumDropReasons {
			t.Fatalf("packet %d: unknown drop reason %d", i, pk.Drop)
		}
		var c *offload.CounterValues
		if pk.SA != nil {
			o.sa[i] = pk.SA.ID()
			if wantSA[o.sa[i]] == nil {
				wantSA[o.sa[i]] = &offload.CounterValues{}
			}
			c = wantSA[o.sa[i]]
		} else if pk.Drop != offload.DropNoSA && pk.Drop != offload.DropMalformed {
			t.Fatalf("packet %d: dropped as %v without an SA", i, pk.Drop)
		}
		if pk.Drop != offload.NotDropped {
			want.Drops[pk.Drop]++
			if c != nil {
				c.Drops[pk.Drop]++
			}
			continue
		}
		if pk.SA == nil {
			t.Fatalf("packet %d: delivered without an SA", i)
		}
		in := len(data)
		if i == 1 {
			in = len(r.good)
		}
		b := pk.Buf
		if b.Off < offload.Headroom || b.Len <= 0 || b.Off+b.Len > offload.Headroom+in {
			t.Fatalf("packet %d: result at %d+%d is outside the input at %d+%d", i, b.Off, b.Len, offload.Headroom, in)
		}
		o.out[i] = append([]byte(nil), b.Bytes()...)
		checkIP(t, o.out[i], pk.SA.Config().Mode, pk.NextHeader)
		want.Packets++
		want.Bytes += uint64(b.Len)
		c.Packets++
		c.Bytes += uint64(b.Len)
	}
	if o.global != want {
		t.Fatalf("global counters %+v, want %+v", o.global, want)
	}
	for id, got := range o.perSA {
		w := offload.CounterValues{}
		if wantSA[id] != nil {
			w = *wantSA[id]
		}
		if got != w {
			t.Fatalf("SA %v counters %+v, want %+v", id, got, w)
		}
	}
	return o
}

// checkIP checks a decapsulated packet: an IP packet whose length fields
// match its size; in transport mode the protocol is the next header and an
// IPv4 header checksum verifies.
func checkIP(t *testing.T, p []byte, mode ipsec.Mode, nh uint8) {
	switch {
	case len(p) > 0 && p[0]>>4 == 4 && header.IPv4(p).IsValid() && int(header.IPv4(p).TotalLength()) == len(p):
		if mode == ipsec.Transport && (header.IPv4(p).Protocol() != nh || !header.IPv4(p).ChecksumValid()) {
			t.Fatalf("transport result %x: protocol or checksum wrong (next header %d)", p, nh)
		}
		if mode == ipsec.Tunnel && nh != header.ProtoIPv4 {
			t.Fatalf("IPv4 inner packet with next header %d", nh)
		}
	case len(p) > 0 && p[0]>>4 == 6 && header.IPv6(p).IsValid() && header.IPv6MinimumSize+int(header.IPv6(p).PayloadLength()) == len(p):
		if mode == ipsec.Tunnel && nh != header.ProtoIPv6 {
			t.Fatalf("IPv6 inner packet with next header %d", nh)
		}
	default:
		t.Fatalf("delivered a malformed packet %x", p)
	}
}

func (r *decapRig) fuzz(t *testing.T, data []byte) {
	if len(data) > driver.MaxPacket {
		return
	}
	a := r.run(t, data, 0x00)
	b := r.run(t, data, 0xff)
	if a.drop != b.drop || a.nh != b.nh || a.sa != b.sa || !bytes.Equal(a.out[0], b.out[0]) || !bytes.Equal(a.out[1], b.out[1]) {
		t.Fatalf("the result depends on bytes outside the packet:\n%+v\n%+v", a, b)
	}
	// The valid packet goes through, unless the input was a copy of it
	// (same SA, same sequence number) that went through first.
	if a.drop[1] != offload.NotDropped && !(a.drop[0] == offload.NotDropped && a.sa[0] == a.sa[1] && a.drop[1] == offload.DropReplay) {
		t.Fatalf("the valid packet behind the input was dropped: %v", a.drop[1])
	}
	if a.drop[1] == offload.NotDropped && !bytes.Equal(a.out[1], r.goodInner) {
		t.Fatalf("the valid packet behind the input came out as %x", a.out[1])
	}
}

// malformedSeeds are hand-made packets for the parser's edges.
func malformedSeeds() [][]byte {
	v4 := func(proto uint8, payload []byte) []byte {
		return testpkt.IP(local4, peer4, proto, payload)
	}
	v6 := func(proto uint8, payload []byte) []byte {
		return testpkt.IP(local6, peer6, proto, payload)
	}
	esp := []byte{0, 0, 0x10, 0x01, 0, 0, 0, 1}
	opts := v4(header.ProtoESP, esp)
	opts = append(opts[:20:20], append([]byte{1, 1, 1, 0}, opts[20:]...)...) // NOP options
	opts[0], opts[3] = 0x46, byte(len(opts))
	header.IPv4(opts).UpdateChecksum()
	frag := v4(header.ProtoESP, esp)
	frag[6] = 0x20 // MF
	header.IPv4(frag).UpdateChecksum()
	hbh := v6(header.ProtoHopByHop, append([]byte{header.ProtoESP, 0, 1, 4, 0, 0, 0, 0}, esp...))
	fragExt := v6(header.ProtoFragment, append([]byte{header.ProtoESP, 0, 0, 0, 0, 0, 0, 1}, esp...))
	keepalive := v4(header.ProtoUDP, []byte{0x11, 0x94, 0x11, 0x94, 0, 9, 0, 0, 0xff})
	ike := v4(header.ProtoUDP, []byte{0x11, 0x94, 0x11, 0x94, 0, 16, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	ah := v4(header.ProtoAH, []byte{4, 1, 0, 0, 0, 0, 0x20, 0x01, 0, 0, 0, 1})
	return [][]byte{nil, {0x45}, {0x60}, v4(header.ProtoESP, nil), v4(header.ProtoESP, esp), opts, frag, hbh, fragExt, keepalive, ike, ah, v6(header.ProtoAH, nil)}
}

func vectorWire(k espKAT) []byte {
	return append(append([]byte(nil), k.outer...), k.esp...)
}

// TestDecapRigSeeds checks that the fuzzers start from packets their SAs
// accept, so that mutations reach past the ICV check.
func TestDecapRigSeeds(t *testing.T) {
	for _, c := range []struct {
		sas  []fuzzSA
		kats []espKAT
	}{{espFuzzSAs, allESPVectors(t)}, {ahFuzzSAs, nil}} {
		r := newDecapRig(t, c.sas, c.kats)
		seeds := r.seeds(t)
		for _, k := range r.kats {
			seeds = append(seeds, vectorWire(k))
		}
		for i, s := range seeds {
			if o := r.run(t, s, 0x5a); o.drop[0] != offload.NotDropped {
				t.Errorf("seed %d dropped: %v", i, o.drop[0])
			}
		}
	}
}

func FuzzESPDecap(f *testing.F) {
	kats := allESPVectors(f)
	r := newDecapRig(f, espFuzzSAs, kats)
	for _, s := range r.seeds(f) {
		f.Add(s)
	}
	for _, k := range kats {
		f.Add(vectorWire(k))
	}
	for _, s := range malformedSeeds() {
		f.Add(s)
	}
	f.Add(r.good)
	f.Fuzz(r.fuzz)
}

func FuzzAHDecap(f *testing.F) {
	r := newDecapRig(f, ahFuzzSAs, nil)
	for _, s := range r.seeds(f) {
		f.Add(s)
	}
	for _, s := range malformedSeeds() {
		f.Add(s)
	}
	f.Add(r.good)
	f.Fuzz(r.fuzz)
}
