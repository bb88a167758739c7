package v2

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
)

// fragBench is a responder IKE SA after IKE_SA_INIT, with known keys, for
// feeding it fragments one by one; sends counts what it sent.
type fragBench struct {
	d     *Daemon
	sa    *ikeSA
	c     *skCrypto // the peer's protection: seals what sa opens
	sends atomic.Int64
}

func newFragBench(t testing.TB, aead bool) *fragBench {
	w := iketest.NewWire()
	t.Cleanup(w.Close)
	b := &fragBench{}
	w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		b.sends.Add(1)
		return nil
	})
	d, err := New(pairConfig(clocktest.New(t0)), iketest.NewInstaller(1), w, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	encr, integ := encrFunc{id: encrAESCBC, keyBits: 128}, integFunc{}
	integ, _ = lookupInteg(integHMACSHA256128)
	ek, ak := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32)
	if aead {
		encr, integ, ek, ak = encrFunc{id: encrAESGCM16, keyBits: 128, aeadICV: 16}, integFunc{}, bytes.Repeat([]byte{3}, 20), nil
	}
	c, err := newSKCrypto(encr, integ, ek, ak)
	if err != nil {
		t.Fatal(err)
	}
	sa := d.newIKESA(false, netip.AddrPortFrom(addrB, 500), netip.AddrPortFrom(addrA, 500), 0x1111)
	sa.suite, sa.win.expect = &suite{encr: encr, integ: integ}, 1
	if sa.keys, err = packKeys([7][]byte{{0}, ak, ak, ek, ek, {0}, {0}}); err != nil {
		t.Fatal(err)
	}
	sa.frag = fragState{on: true, mtu: defaultMTU4}
	b.d, b.sa, b.c = d, sa, c
	return b
}

// header is the peer's request header with a message ID.
func (b *fragBench) header(id uint32) Header {
	return Header{SPIi: b.sa.spiI, SPIr: b.sa.spiR, Version: Version, Exchange: Informational, Flags: FlagInitiator, MessageID: id}
}

// frag seals one fragment of the peer's.
func (b *fragBench) frag(t testing.TB, id uint32, num, total int, next PayloadType, content []byte) []byte {
	var fh [4]byte
	binary.BigEndian.PutUint16(fh[:], uint16(num))
	binary.BigEndian.PutUint16(fh[2:], uint16(total))
	f, err := b.c.sealPayload(b.header(id), PayloadSKF, next, fh[:], content, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// feed hands a datagram to the SA as dispatch would and returns the
// reassembled message, if this completed one.
func (b *fragBench) feed(t testing.TB, dgram []byte) *Message {
	m, err := ParseMessage(dgram)
	if err != nil {
		t.Fatalf("fragment does not parse: %v", err)
	}
	b.sa.lock()
	defer b.sa.unlock()
	whole, ok := b.sa.receiveFragment(m)
	if !ok {
		return nil
	}
	return whole
}

func (b *fragBench) counters() ike.Counters { return b.d.Status().Counters }

// testPayloads is a message's inner payloads and their wire form.
func testPayloads() ([]Payload, []byte) {
	ps := []Payload{notifyPayload(InitialContact, nil), {Type: PayloadDelete, Body: (&Delete{Protocol: ProtoESP, SPIs: []uint32{1, 2, 3}}).marshal()},
		{Type: PayloadVendorID, Body: bytes.Repeat([]byte("vendor"), 40)}}
	return ps, marshalPayloads(nil, ps)
}

// TestFragmentReassembly: out of order, duplicates, a forged fragment
// among good ones, for CBC and GCM protection.
func TestFragmentReassembly(t *testing.T) {
	for _, aead := range []bool{false, true} {
		b := newFragBench(t, aead)
		ps, plain := testPayloads()
		third := len(plain) / 3
		parts := [][]byte{plain[:third], plain[third : 2*third], plain[2*third:]}
		f := func(n int) []byte {
			next := PayloadNone
			if n == 1 {
				next = ps[0].Type
			}
			return b.frag(t, 1, n, 3, next, parts[n-1])
		}
		forged := f(2)
		forged[len(forged)-1] ^= 1
		for i, dg := range [][]byte{f(3), forged, f(3), f(1)} {
			if m := b.feed(t, dg); m != nil {
				t.Fatalf("datagram %d completed the message", i)
			}
		}
		m := b.feed(t, f(2))
		if m == nil || m.MessageID != 1 || !reflect.DeepEqual(m.Payloads, ps) {
			t.Fatalf("reassembled %+v", m)
		}
		c := b.counters()
		if c.FragmentsReceived != 5 || c.Duplicates != 1 || c.FragmentsDropped != 2 {
			t.Errorf("counters %+v", c)
		}
	}
}

// TestFragmentRules: the fragments RFC 7383 §2.5 and §2.6 refuse, and
// the ones that restart or leave the reassembly alone.
func TestFragmentRules(t *testing.T) {
	_, plain := testPayloads()
	t.Run("malformed", func(t *testing.T) {
		b := newFragBench(t, false)
		for _, dg := range [][]byte{
			b.frag(t, 1, 0, 2, PayloadNotify, plain[:10]),              // fragment 0
			b.frag(t, 1, 3, 2, PayloadNone, plain[:10]),                // beyond the total
			b.frag(t, 1, 1, maxFragments+1, PayloadNotify, plain[:10]), // too many
			b.frag(t, 1, 2, 2, PayloadNotify, plain[:10]),              // Next Payload in fragment 2
			b.frag(t, 1, 1, 2, PayloadNone, plain[:10]),                // none in fragment 1
		} {
			if b.feed(t, dg) != nil {
				t.Fatal("a malformed fragment completed a message")
			}
		}
		if c := b.counters(); c.Malformed != 5 || c.FragmentsDropped != 5 {
			t.Errorf("counters %+v", c)
		}
		// The SKF with a payload before it.
		dg := b.frag(t, 1, 1, 1, PayloadNotify, plain)
		m, _ := ParseMessage(dg)
		m.Payloads = append([]Payload{{Type: PayloadVendorID, Body: []byte("x")}}, m.Payloads...)
		b.sa.lock()
		_, ok := b.sa.receiveFragment(m)
		b.sa.unlock()
		if ok {
			t.Error("an SKF after another payload was taken")
		}
	})
	t.Run("window", func(t *testing.T) {
		b := newFragBench(t, false)
		if b.feed(t, b.frag(t, 5, 1, 1, PayloadNotify, plain)) != nil || b.counters().OutOfWindow != 1 {
			t.Error("a fragment outside the window was taken")
		}
		resp := b.frag(t, 1, 1, 1, PayloadNotify, plain)
		resp[hdrFlags] |= byte(FlagResponse)
		if m, err := ParseMessage(resp); err != nil {
			t.Fatal(err)
		} else {
			b.sa.lock()
			_, ok := b.sa.receiveFragment(m)
			b.sa.unlock()
			if ok {
				t.Error("a response fragment with no request outstanding was taken")
			}
		}
	})
	t.Run("total-changes", func(t *testing.T) {
		b := newFragBench(t, false)
		q := len(plain) / 4
		b.feed(t, b.frag(t, 1, 1, 3, PayloadNotify, plain[:q]))
		// The sender went to smaller fragments: 4 now. The old one goes.
		b.feed(t, b.frag(t, 1, 2, 4, PayloadNone, plain[q:2*q]))
		// A late fragment of the 3-fragment form is dropped.
		b.feed(t, b.frag(t, 1, 3, 3, PayloadNone, plain[2*q:3*q]))
		b.feed(t, b.frag(t, 1, 3, 4, PayloadNone, plain[2*q:3*q]))
		b.feed(t, b.frag(t, 1, 4, 4, PayloadNone, plain[3*q:]))
		if m := b.feed(t, b.frag(t, 1, 1, 4, PayloadNotify, plain[:q])); m == nil || len(m.Payloads) != 3 {
			t.Fatalf("reassembled %+v", m)
		}
		if c := b.counters(); c.FragmentsDropped != 1 {
			t.Errorf("counters %+v", c)
		}
	})
	t.Run("too-long", func(t *testing.T) {
		b := newFragBench(t, true)
		chunk := bytes.Repeat([]byte{0}, 600)
		taken := 0
		for n := 1; n <= maxFragments; n++ {
			next := PayloadNone
			if n == 1 {
				next = PayloadVendorID
			}
			b.feed(t, b.frag(t, 1, n, maxFragments, next, chunk))
			b.sa.lock()
			if r := b.sa.frag.held(0); r != nil {
				taken = r.size
			} else if n > 1 {
				b.sa.unlock()
				break
			}
			b.sa.unlock()
		}
		if taken > maxReassembled || taken < maxReassembled-600 {
			t.Errorf("reassembly held %d bytes before giving up", taken)
		}
		b.sa.lock()
		left := b.sa.frag.held(0)
		b.sa.unlock()
		if left != nil {
			t.Errorf("the over-long message stays in reassembly with %d bytes", left.size)
		}
	})
	t.Run("retransmitted-request", func(t *testing.T) {
		b := newFragBench(t, false)
		half := len(plain) / 2
		f1, f2 := b.frag(t, 1, 1, 2, PayloadNotify, plain[:half]), b.frag(t, 1, 2, 2, PayloadNone, plain[half:])
		b.feed(t, f1)
		if b.feed(t, f2) == nil {
			t.Fatal("not reassembled")
		}
		b.sa.lock()
		b.sa.respond(Informational, []Payload{{Type: PayloadVendorID, Body: bytes.Repeat([]byte("r"), 1500)}})
		sent := len(b.sa.win.lastResp)
		b.sa.unlock()
		if sent < 3 {
			t.Fatalf("the response went in %d datagrams", sent)
		}
		before := b.sends.Load()
		b.feed(t, f2)
		waitFor(t, "nothing for fragment 2", func() bool { return b.sends.Load() == before })
		b.feed(t, f1)
		waitFor(t, "the response again", func() bool { return b.sends.Load() == before+int64(sent) })
	})
}

// TestSealOutFragments: a message over the fragment size goes in
// fragments that each fit it and open to the message; one under it, and
// any message with fragmentation off, whole.
func TestSealOutFragments(t *testing.T) {
	for _, aead := range []bool{false, true} {
		for _, mtu := range []int{ike.MinFragmentMTU, 576, 1280} {
			b := newFragBench(t, aead)
			ps := []Payload{{Type: PayloadVendorID, Body: bytes.Repeat([]byte("c"), 3000)}, notifyPayload(InitialContact, nil)}
			b.sa.lock()
			wire, err := b.sa.sealOut(b.header(1), ps, mtu)
			b.sa.unlock()
			if err != nil {
				t.Fatal(err)
			}
			if len(wire) < 3000/mtu {
				t.Fatalf("mtu %d: %d fragments", mtu, len(wire))
			}
			var got *Message
			for i, dg := range wire {
				if len(dg)+b.sa.overhead() > mtu {
					t.Errorf("mtu %d: fragment %d is %d bytes", mtu, i+1, len(dg)+b.sa.overhead())
				}
				if i < len(wire)-1 && len(dg)+b.sa.overhead() < mtu-32 {
					t.Errorf("mtu %d: fragment %d is only %d bytes", mtu, i+1, len(dg)+b.sa.overhead())
				}
				got = b.feed(t, dg)
			}
			if got == nil || !reflect.DeepEqual(got.Payloads, ps) {
				t.Fatalf("mtu %d aead %v: reassembled %+v", mtu, aead, got)
			}
		}
	}
	b := newFragBench(t, false)
	small := []Payload{notifyPayload(InitialContact, nil)}
	b.sa.lock()
	defer b.sa.unlock()
	if wire, err := b.sa.sealOut(b.header(1), small, 0); err != nil || len(wire) != 1 {
		t.Errorf("a small message: %d datagrams, %v", len(wire), err)
	}
	b.sa.frag.on = false
	big := []Payload{{Type: PayloadVendorID, Body: bytes.Repeat([]byte("c"), 3000)}}
	if wire, err := b.sa.sealOut(b.header(1), big, 0); err != nil || len(wire) != 1 {
		t.Errorf("fragmentation off: %d datagrams, %v", len(wire), err)
	}
}

// TestFragmentSizes: the default fragment MTU by address family (RFC 7383
// §2.5.1), the headers around a message, and the sizes tried after
// silence (§2.5.2), never below the family's default or the configured
// size.
func TestFragmentSizes(t *testing.T) {
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	for _, c := range []struct {
		name       string
		cfg        int
		local      netip.AddrPort
		remote     netip.Addr
		mtu, over  int
		afterSizes []int
	}{
		{"ipv4", 0, netip.AddrPortFrom(addrB, 500), addrA, 576, 28, nil},
		{"ipv4-natt", 0, netip.AddrPortFrom(addrB, 4500), addrA, 576, 32, nil},
		{"ipv6", 0, netip.AddrPortFrom(v6b, 500), v6a, 1280, 48, nil},
		{"ipv4-1500", 1500, netip.AddrPortFrom(addrB, 500), addrA, 1500, 28, []int{1280, 576}},
		{"ipv6-9000", 9000, netip.AddrPortFrom(v6b, 4500), v6a, 9000, 52, []int{1280}},
		{"ipv4-400", 400, netip.AddrPortFrom(addrB, 500), addrA, 400, 28, nil},
		{"off", -1, netip.AddrPortFrom(addrB, 500), addrA, 0, 28, nil},
	} {
		cfg := pairConfig(clocktest.New(t0))
		cfg.FragmentMTU = c.cfg
		d, err := New(cfg, iketest.NewInstaller(1), iketest.NewWire(), nil)
		if err != nil {
			t.Fatal(err)
		}
		sa := d.newIKESA(false, c.local, netip.AddrPortFrom(c.remote, c.local.Port()), 1)
		d.mu.Lock()
		mtu := d.fragmentMTU(c.remote.Is4())
		d.mu.Unlock()
		var sizes []int
		for size := mtu; size > 0; {
			if size = sa.smallerMTU(size); size > 0 {
				sizes = append(sizes, size)
			}
		}
		if mtu != c.mtu || sa.overhead() != c.over || !reflect.DeepEqual(sizes, c.afterSizes) {
			t.Errorf("%s: MTU %d, overhead %d, then %v; want %d, %d, %v", c.name, mtu, sa.overhead(), sizes, c.mtu, c.over, c.afterSizes)
		}
		d.Close()
	}
}
