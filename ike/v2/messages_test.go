package v2

import (
	"bytes"
	"errors"
	"math/rand"
	"net/netip"
	"reflect"
	"testing"
	"testing/quick"
)

// randomMessage builds a message of random valid payloads.
func randomMessage(r *rand.Rand) *Message {
	m := &Message{Header: Header{SPIi: r.Uint64(), SPIr: r.Uint64(), Version: Version,
		Exchange: ExchangeType(34 + r.Intn(4)), Flags: Flags(r.Intn(4) << 3), MessageID: r.Uint32()}}
	bytesN := func(n int) []byte {
		b := make([]byte, n)
		r.Read(b)
		return b
	}
	for _, t := range r.Perm(12) {
		switch t {
		case 0:
			m.add(PayloadSA, randomSA(r).marshal())
		case 1:
			ke := KE{Group: uint16(r.Intn(32)), Data: bytesN(1 + r.Intn(64))}
			m.add(PayloadKE, ke.marshal())
		case 2:
			id := ID{Type: IDFQDN, Data: []byte("gw.example.net")}
			m.add(PayloadIDi, id.marshal())
		case 3:
			id := ID{Type: IDIPv4, Data: bytesN(4)}
			m.add(PayloadIDr, id.marshal())
		case 4:
			a := Auth{Method: AuthSharedKey, Data: bytesN(20)}
			m.add(PayloadAUTH, a.marshal())
		case 5:
			m.add(PayloadNonce, bytesN(minNonce+r.Intn(maxNonce-minNonce)))
		case 6:
			for i := r.Intn(3); i >= 0; i-- {
				m.addNotify(Notify{Protocol: ProtoESP, SPI: bytesN(4 * r.Intn(2)), Type: NotifyType(r.Intn(1 << 16)), Data: bytesN(r.Intn(8))})
			}
		case 7:
			d := Delete{Protocol: ProtoESP, SPIs: []uint32{r.Uint32(), r.Uint32()}}
			m.add(PayloadDelete, d.marshal())
		case 8:
			m.add(PayloadTSi, randomTS(r).marshal())
		case 9:
			m.add(PayloadTSr, randomTS(r).marshal())
		case 10:
			m.add(PayloadVendorID, bytesN(1+r.Intn(16)))
		case 11:
			c := Cert{Encoding: 4, Data: bytesN(r.Intn(20))}
			m.add(PayloadCERTREQ, c.marshal())
		}
	}
	return m
}

func randomSA(r *rand.Rand) *SA {
	s := &SA{}
	for i := 0; i <= r.Intn(3); i++ {
		p := Proposal{Number: uint8(i + 1), Protocol: Protocol(1 + r.Intn(3))}
		if p.Protocol != ProtoIKE {
			p.SPI = []byte{1, 2, 3, byte(i)}
		}
		for j := 0; j <= r.Intn(5); j++ {
			t := Transform{Type: TransformType(1 + r.Intn(5)), ID: uint16(r.Intn(40))}
			if r.Intn(2) == 0 {
				t.KeyLength = 128
			}
			p.Transforms = append(p.Transforms, t)
		}
		s.Proposals = append(s.Proposals, p)
	}
	return s
}

func randomTS(r *rand.Rand) *TS {
	t := &TS{}
	for i := 0; i <= r.Intn(3); i++ {
		s := TrafficSelector{Protocol: uint8(r.Intn(18)), StartPort: uint16(r.Intn(100)), EndPort: 65535}
		if r.Intn(2) == 0 {
			s.Start, s.End = netip.AddrFrom4([4]byte{198, 51, 100, 0}), netip.AddrFrom4([4]byte{198, 51, 100, 255})
		} else {
			s.Start, s.End = netip.MustParseAddr("2001:db8::"), netip.MustParseAddr("2001:db8::ffff")
		}
		t.Selectors = append(t.Selectors, s)
	}
	return t
}

// TestMarshalUnmarshal round-trips random messages and every payload in
// them, and checks that no proper prefix of a message parses (crypto/tls's
// TestMarshalUnmarshal).
func TestMarshalUnmarshal(t *testing.T) {
	f := func(seed int64) bool {
		r := rand.New(rand.NewSource(seed))
		m := randomMessage(r)
		b := m.Marshal()
		got, err := ParseMessage(b)
		if err != nil {
			t.Logf("parse: %v", err)
			return false
		}
		m.Length, m.Next, m.raw = got.Length, got.Next, got.raw
		if !reflect.DeepEqual(got, m) {
			t.Logf("got %+v\nwant %+v", got, m)
			return false
		}
		if !bytes.Equal(got.Marshal(), b) {
			return false
		}
		for i := 0; i < len(b); i++ {
			if _, err := ParseMessage(b[:i]); err == nil {
				t.Logf("prefix of %d bytes parsed", i)
				return false
			}
		}
		for _, p := range got.Payloads {
			var v payloadBody
			switch p.Type {
			case PayloadSA:
				v = &SA{}
			case PayloadKE:
				v = &KE{}
			case PayloadIDi, PayloadIDr:
				v = &ID{}
			case PayloadAUTH:
				v = &Auth{}
			case PayloadNotify:
				v = &Notify{}
			case PayloadDelete:
				v = &Delete{}
			case PayloadTSi, PayloadTSr:
				v = &TS{}
			case PayloadCERTREQ:
				v = &Cert{}
			default:
				continue
			}
			if err := v.unmarshal(p.Body); err != nil {
				t.Logf("%v: %v", p.Type, err)
				return false
			}
			if !bytes.Equal(v.marshal(), p.Body) {
				t.Logf("%v: body changed", p.Type)
				return false
			}
			if p.Type == PayloadSA || p.Type == PayloadTSi || p.Type == PayloadTSr || p.Type == PayloadDelete {
				for i := 0; i < len(p.Body); i++ {
					if v.unmarshal(p.Body[:i]) == nil {
						t.Logf("%v: prefix of %d bytes parsed", p.Type, i)
						return false
					}
				}
			}
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 300}); err != nil {
		t.Fatal(err)
	}
}

// TestCriticalBit: an unknown payload is skipped unless its critical bit
// is set, which fails the message with UNSUPPORTED_CRITICAL_PAYLOAD
// (RFC 7296 §2.5).
func TestCriticalBit(t *testing.T) {
	m := &Message{Header: Header{SPIi: 1, Version: Version, Exchange: IKESAInit}}
	m.add(PayloadNonce, make([]byte, 32))
	m.Payloads = append(m.Payloads, Payload{Type: 200, Body: []byte{1, 2, 3}})
	m.add(PayloadVendorID, []byte("v"))
	got, err := ParseMessage(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if ts := got.Types(); !reflect.DeepEqual(ts, []PayloadType{PayloadNonce, PayloadVendorID}) {
		t.Fatalf("payloads %v", ts)
	}
	m.Payloads[1].Critical = true
	if _, err := ParseMessage(m.Marshal()); !errors.Is(err, errUnknownCritical) {
		t.Fatalf("critical unknown payload: %v", err)
	}
}

// TestDuplicatePayloads: a second SA, KE, Nonce, ID, AUTH, TS or SK
// payload makes the message malformed; Notify and Delete may repeat.
func TestDuplicatePayloads(t *testing.T) {
	for _, typ := range []PayloadType{PayloadSA, PayloadKE, PayloadNonce, PayloadIDi, PayloadAUTH, PayloadTSr} {
		m := &Message{Header: Header{Version: Version}}
		m.add(typ, []byte{1, 2, 3, 4, 5})
		m.add(typ, []byte{1, 2, 3, 4, 5})
		if _, err := ParseMessage(m.Marshal()); !errors.Is(err, ErrMalformed) {
			t.Errorf("two %v: %v", typ, err)
		}
	}
	m := &Message{Header: Header{Version: Version}}
	m.addNotify(Notify{Type: InitialContact})
	m.addNotify(Notify{Type: NATDetectionSourceIP, Data: make([]byte, 20)})
	if _, err := ParseMessage(m.Marshal()); err != nil {
		t.Fatal(err)
	}
}

// TestHeaderChecks: the length field must be the datagram's, the major
// version 2, and an SK payload the last.
func TestHeaderChecks(t *testing.T) {
	m := &Message{Header: Header{Version: Version, Exchange: IKEAuth}}
	m.Payloads = []Payload{{Type: PayloadSK, Body: make([]byte, 32), Inner: PayloadIDi}}
	b := m.Marshal()
	if _, err := ParseMessage(b); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseMessage(append(b, 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	b[hdrVersion] = 0x30
	if _, err := ParseMessage(b); !errors.Is(err, ErrVersion) {
		t.Errorf("version 3: %v", err)
	}
	m.Payloads = append(m.Payloads, Payload{Type: PayloadVendorID, Body: []byte("x")})
	m.Payloads[0].Inner = PayloadNone
	if _, err := ParseMessage(m.Marshal()); err == nil {
		t.Error("SK payload not last was accepted")
	}
}
