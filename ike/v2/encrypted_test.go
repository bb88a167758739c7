package v2

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
)

// skSuites are the SK protections tested: AES-CBC and 3DES with each HMAC,
// AES-GCM with each ICV length (RFC 5282).
func skSuites() []suite {
	var out []suite
	for _, e := range []encrFunc{{id: encrAESCBC, keyBits: 128}, {id: encrAESCBC, keyBits: 256}, {id: encr3DES, keyBits: 192}} {
		for _, i := range []uint16{integHMACSHA196, integHMACSHA256128, integHMACSHA384192, integHMACSHA512256} {
			ig, _ := lookupInteg(i)
			out = append(out, suite{encr: e, integ: ig})
		}
	}
	for _, icv := range []int{8, 12, 16} {
		id := map[int]uint16{8: encrAESGCM8, 12: encrAESGCM12, 16: encrAESGCM16}[icv]
		for _, bits := range []int{128, 256} {
			out = append(out, suite{encr: encrFunc{id: id, keyBits: bits, aeadICV: icv}})
		}
	}
	return out
}

func randomKey(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestSKRoundTrip seals and opens a message with every protection, and
// checks that a change of any one byte (header, SK header, IV, ciphertext,
// ICV) fails the check.
func TestSKRoundTrip(t *testing.T) {
	for _, s := range skSuites() {
		t.Run(fmt.Sprintf("%d-%d-%d-%d", s.encr.id, s.encr.keyBits, s.encr.aeadICV, s.integ.id), func(t *testing.T) {
			c, err := newSKCrypto(s.encr, s.integ, randomKey(s.encr.keyLen()), randomKey(s.integ.keyLen()))
			if err != nil {
				t.Fatal(err)
			}
			h := Header{SPIi: 0x1122334455667788, SPIr: 0x99, Version: Version, Exchange: IKEAuth, Flags: FlagInitiator, MessageID: 1}
			id := ID{Type: IDFQDN, Data: []byte("gw.example.net")}
			inner := []Payload{{Type: PayloadIDi, Body: id.marshal()}, {Type: PayloadAUTH, Body: (&Auth{Method: AuthSharedKey, Data: randomKey(32)}).marshal()}}
			for n := 0; n < 20; n++ { // every padding length
				inner[1].Body = append(inner[1].Body, 1)
				b, err := c.seal(h, inner, rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				m, err := ParseMessage(b)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.openMessage(b, m); err != nil {
					t.Fatal(err)
				}
				if len(m.Payloads) != 2 || !bytes.Equal(m.Payloads[1].Body, inner[1].Body) || m.Payloads[0].Type != PayloadIDi {
					t.Fatalf("payloads %v", m.Types())
				}
				if n > 0 {
					continue
				}
				for i := range b {
					bad := append([]byte(nil), b...)
					bad[i] ^= 0x40
					m, err := ParseMessage(bad)
					if err != nil {
						continue // the header or SK header no longer parses
					}
					if err := c.openMessage(bad, m); !errors.Is(err, errIntegrity) && !errors.Is(err, ErrMalformed) {
						t.Fatalf("byte %d changed: %v", i, err)
					} else if err == nil {
						t.Fatalf("byte %d changed and the message opened", i)
					}
				}
			}
		})
	}
}
