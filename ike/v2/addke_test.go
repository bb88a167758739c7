package v2

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/ismgw/ism/ike"
)

// TestIntAuthData: IntAuth_*A | IntAuth_*P of RFC 9242 §3.3.2 for sealed
// and opened IKE_INTERMEDIATE messages under every SK protection: the
// header and the SK generic header as sent, Length and Payload Length
// adjusted to leave out the IV, padding, Pad Length and checksum, then the
// plaintext; the same bytes for the sender (from its payloads) and the
// receiver (from what it decrypted), whatever the cipher.
func TestIntAuthData(t *testing.T) {
	h := Header{SPIi: 0x0102030405060708, SPIr: 0x1112131415161718, Version: Version, Exchange: IKEIntermediate, Flags: FlagInitiator, MessageID: 1}
	inner := []Payload{{Type: PayloadKE, Body: (&KE{Group: ike.MLKEM768, Data: bytes.Repeat([]byte{0xab}, 1184)}).marshal()}}
	plain := marshalPayloads(nil, inner)
	var first []byte
	for _, s := range skSuites() {
		c, err := newSKCrypto(s.encr, s.integ, randomKey(s.encr.keyLen()), randomKey(s.integ.keyLen()))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.seal(h, inner, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := ParseMessage(b)
		if err := c.openMessage(b, m); err != nil {
			t.Fatal(err)
		}
		got := intAuthData(m.Header, m.inner, m.plain)
		// The RFC's construction from the wire bytes.
		want := append([]byte(nil), b[:HeaderSize+payloadHeaderSize]...)
		binary.BigEndian.PutUint32(want[hdrLength:], uint32(HeaderSize+payloadHeaderSize+len(plain)))
		binary.BigEndian.PutUint16(want[HeaderSize+2:], uint16(payloadHeaderSize+len(plain)))
		want = append(want, plain...)
		if !bytes.Equal(got, want) || !bytes.Equal(intAuthData(h, PayloadKE, plain), want) {
			t.Fatalf("%v: IntAuth data differs from the RFC's construction", s)
		}
		if first == nil {
			first = got
		} else if !bytes.Equal(first, got) {
			t.Fatalf("%v: IntAuth data depends on the cipher", s)
		}
	}
}

// TestPickADDKE: the responder's choice of ADDKE transforms (RFC 9370
// §2.2.1) and the initiator's check of it, for required and optional
// configurations against proposals with and without them.
func TestPickADDKE(t *testing.T) {
	req := suite{addke: []int{ike.MLKEM768}}
	opt := suite{addke: []int{ike.MLKEM768}, addkeOptional: true}
	two := suite{addke: []int{ike.MLKEM768, 31}, addkeOptional: true}
	none := suite{}
	prop := func(ts ...Transform) Proposal { return Proposal{Transforms: ts} }
	ke1 := func(id int) Transform { return Transform{Type: TransformADDKE1, ID: uint16(id)} }
	ke2 := func(id int) Transform { return Transform{Type: TransformADDKE1 + 1, ID: uint16(id)} }
	for _, c := range []struct {
		su      suite
		p       Proposal
		allowed bool
		want    []int // nil with ok false: refused
		ok      bool
	}{
		{req, prop(ke1(36)), true, []int{36}, true},
		{req, prop(ke1(36), ke1(0)), true, []int{36}, true},
		{req, prop(), true, nil, false},                // a peer without RFC 9370
		{req, prop(ke1(36)), false, nil, false},        // no IKE_INTERMEDIATE
		{opt, prop(), true, nil, true},                 // falls back
		{opt, prop(ke1(36), ke1(0)), false, nil, true}, // NONE without IKE_INTERMEDIATE
		{opt, prop(ke1(35)), true, nil, false},         // only a method this end lacks
		{none, prop(ke1(36), ke1(0)), true, nil, true}, // NONE for a type this end does not use
		{none, prop(ke1(36)), true, nil, false},        // required by the peer
		{two, prop(ke1(36), ke1(0), ke2(31), ke2(0)), true, []int{36, 31}, true},
		{two, prop(ke1(0), ke2(31)), true, []int{31}, true},     // ADDKE1 NONE, ADDKE2 done
		{two, prop(ke1(36), ke1(0), ke2(19)), true, nil, false}, // ADDKE2 without NONE or 31
		{req, prop(Transform{Type: TransformADDKE1, ID: 36, KeyLength: 128}), true, nil, false},
	} {
		methods, answer, ok := pickADDKE(c.su, c.p, c.allowed)
		if ok != c.ok || !slices.Equal(methods, c.want) {
			t.Errorf("%v against %v (allowed %v): %v %v, want %v %v", c.su.addke, c.p.Transforms, c.allowed, methods, ok, c.want, c.ok)
			continue
		}
		if !ok || len(c.su.addke) == 0 {
			continue // the read-back needs the proposer's configuration
		}
		got, err := acceptADDKE(c.su, prop(answer...))
		if err != nil || !slices.Equal(got, methods) {
			t.Errorf("%v: the initiator reads the answer %v as %v, %v", c.su.addke, answer, got, err)
		}
	}
	// The initiator refuses answers it did not allow.
	for _, c := range []struct {
		su suite
		p  Proposal
	}{{req, prop()}, {req, prop(ke1(0))}, {opt, prop(ke1(35))}, {opt, prop(ke1(36), ke1(0))}, {none, prop(ke1(36))}, {req, prop(ke2(36))}} {
		if m, err := acceptADDKE(c.su, c.p); err == nil {
			t.Errorf("%v accepted the answer %v as %v", c.su.addke, c.p.Transforms, m)
		}
	}
}

// FuzzADDKE parses SA payloads and runs the responder's choice of ADDKE
// transforms for a configuration of two optional methods on each
// proposal: never a panic; a choice has no method twice, only configured
// ones in their order, one answer transform per ADDKE type proposed, and
// the initiator's check reads the answer back as the same methods.
func FuzzADDKE(f *testing.F) {
	for _, s := range addkeSeeds() {
		f.Add(s)
	}
	su := suite{addke: []int{ike.MLKEM768, 31}, addkeOptional: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		var sa SA
		if sa.unmarshal(b) != nil {
			return
		}
		for _, p := range sa.Proposals {
			methods, answer, ok := pickADDKE(su, p, true)
			if !ok {
				continue
			}
			types := map[TransformType]bool{}
			for _, x := range p.Transforms {
				if isADDKE(x.Type) {
					types[x.Type] = true
				}
			}
			if len(answer) != len(types) {
				t.Fatalf("%d answer transforms for %d ADDKE types", len(answer), len(types))
			}
			j := 0
			for _, m := range methods {
				for j < len(su.addke) && su.addke[j] != m {
					j++
				}
				if j == len(su.addke) {
					t.Fatalf("methods %v not a subsequence of %v", methods, su.addke)
				}
				j++
			}
			mine := true
			for _, x := range answer {
				mine = mine && int(x.Type-TransformADDKE1) < len(su.addke)
			}
			if got, err := acceptADDKE(su, Proposal{Transforms: answer}); mine && (err != nil || !slices.Equal(got, methods)) {
				t.Fatalf("answer %v read back as %v, %v; chosen %v", answer, got, err, methods)
			}
		}
	})
}

// addkeSeeds are SA payloads with ADDKE transforms: the RFC 9370 §3.1
// example's shape, an ML-KEM hybrid with NONE, and one without.
func addkeSeeds() [][]byte {
	var out [][]byte
	su := suite{encr: encrFunc{id: encrAESGCM16, keyBits: 256, aeadICV: 16}, prf: prfFunc{id: prfHMACSHA384}, group: 19}
	for _, c := range []suite{su, {addke: []int{ike.MLKEM768}, addkeOptional: true}, {addke: []int{ike.MLKEM768, 31, 19}}} {
		c.encr, c.prf, c.group = su.encr, su.prf, su.group
		out = append(out, ikeProposals([]suite{c}).marshal())
	}
	ex := &SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
		{Type: TransformENCR, ID: encrAESGCM16, KeyLength: 256}, {Type: TransformDH, ID: 16}, {Type: TransformPRF, ID: prfHMACSHA256},
		{Type: TransformADDKE1 + 1, ID: 36}, {Type: TransformADDKE1 + 1, ID: 35}, {Type: TransformADDKE1 + 2, ID: 36},
		{Type: TransformADDKE1 + 2, ID: 37}, {Type: TransformADDKE1 + 4, ID: 31}, {Type: TransformADDKE1 + 4, ID: 0}}}}}
	return append(out, ex.marshal())
}
