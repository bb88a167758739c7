package ism

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "github.com/ismgw/ism/ike/v1"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/ism/transport"
)

// mainModeMM1 is the first message of a main mode (RFC 2409 §5: HDR, SA)
// with one proposal of one transform, built byte by byte after RFC 2408:
// the ISAKMP header (§3.1: initiator cookie 8, responder cookie 8, next
// payload 1, version 1, exchange type 1, flags 1, message ID 4, length 4),
// the SA payload (§3.4: generic header 4, DOI 4, situation 4), the
// proposal (§3.5: generic header, proposal #, protocol ID, SPI size,
// number of transforms) and the transform (§3.6: generic header,
// transform #, transform ID, 2 reserved, attributes in the TV form of
// §3.3). Values: exchange 2 identity protection (§3.1), DOI 1 and
// situation 1 SIT_IDENTITY_ONLY (RFC 2407 §4.2, §4.6.1), protocol 1
// PROTO_ISAKMP and transform 1 KEY_IKE (RFC 2407 §4.4.1, §4.4.2), and the
// phase 1 attributes of RFC 2409 Appendix A: encryption (1) 7 AES-CBC, key
// length (14) 128, hash (2) 2 SHA, authentication (3) 1 pre-shared key,
// group (4) 14, life type (11) 1 seconds, life duration (12) 28800.
func mainModeMM1() []byte {
	tv := func(b []byte, typ, v uint16) []byte {
		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, 0x8000|typ), v)
	}
	var attrs []byte
	for _, a := range [][2]uint16{{1, 7}, {14, 128}, {2, 2}, {3, 1}, {4, 14}, {11, 1}, {12, 28800}} {
		attrs = tv(attrs, a[0], a[1])
	}
	transform := append([]byte{0, 0, 0, 0, 1, 1, 0, 0}, attrs...)
	binary.BigEndian.PutUint16(transform[2:], uint16(len(transform)))
	proposal := append([]byte{0, 0, 0, 0, 1, 1, 0, 1}, transform...)
	binary.BigEndian.PutUint16(proposal[2:], uint16(len(proposal)))
	sa := append([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1}, proposal...)
	binary.BigEndian.PutUint16(sa[2:], uint16(len(sa)))
	hdr := make([]byte, v1.HeaderSize)
	rand.Read(hdr[:8])
	hdr[16], hdr[17], hdr[18] = 1, 0x10, 2 // next payload SA, version 1.0, identity protection
	msg := append(hdr, sa...)
	binary.BigEndian.PutUint32(msg[24:], uint32(len(msg)))
	return msg
}

// badISAKMP returns datagrams derived from a well-formed MM1: malformed
// ones, one too long for any ISAKMP message, one whose only payload is of
// an unknown type, a well-formed one for an IKE SA that does not exist,
// and one that says it is IKEv2 (version 2.0).
func badISAKMP(t *testing.T) (malformed [][]byte, tooLong, noSA, unknownSA, v2 []byte) {
	t.Helper()
	base := mainModeMM1()
	m, err := v1.ParseMessage(base)
	if err != nil {
		t.Fatalf("the untampered MM1 does not parse: %v", err)
	}
	if p := m.First(v1.PayloadSA); p == nil {
		t.Fatal("the untampered MM1 has no SA payload")
	} else if _, err := v1.ParseSA(p.Body); err != nil {
		t.Fatalf("the untampered MM1's SA does not parse: %v", err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), base...)) }
	setLen := func(b []byte) []byte { binary.BigEndian.PutUint32(b[24:], uint32(len(b))); return b }
	for _, n := range []int{0, 1, 8, 16, 27, 28, 40, len(base) - 1} {
		malformed = append(malformed, base[:n:n]) // truncated: shorter than its length field
	}
	if malformed[1][0] == 0xff { // one 0xff octet is a NAT-T keepalive (RFC 3948 §2.3), not garbage
		malformed[1] = []byte{0xfe}
	}
	malformed = append(malformed,
		mut(func(b []byte) []byte { return append(b, 0, 0, 0, 0) }),                         // longer than its length field
		mut(func(b []byte) []byte { binary.BigEndian.PutUint16(b[30:], 0xffff); return b }), // SA payload past the end
		mut(func(b []byte) []byte { binary.BigEndian.PutUint16(b[30:], 2); return b }),      // SA payload shorter than its header
		mut(func(b []byte) []byte { binary.BigEndian.PutUint16(b[42:], 0x0fff); return b }), // proposal past the SA payload
		mut(func(b []byte) []byte { return setLen(append(b[:v1.HeaderSize+8], 0, 0, 0)) }),  // SA payload cut inside
		mut(func(b []byte) []byte { clear(b[v1.HeaderSize:]); return b }),                   // payloads zeroed
		mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[32:], 2); return b }),      // DOI 2
	)
	tooLong = mut(func(b []byte) []byte { return setLen(append(b, make([]byte, v1.MaxMessageSize)...)) })
	noSA = mut(func(b []byte) []byte { b[16] = 200; return b }) // the SA payload's type says 200, unassigned
	unknownSA = mut(func(b []byte) []byte {
		rand.Read(b[8:16]) // a responder cookie no IKE SA has
		b[18] = 5          // informational
		return b
	})
	v2 = mut(func(b []byte) []byte { b[17] = 0x20; return b }) // version 2.0
	return malformed, tooLong, noSA, unknownSA, v2
}

// TestSwanMalformedISAKMP: malformed and truncated ISAKMP datagrams sent
// from a raw UDP socket in charon's namespace to ISM's ports 500 and 4500
// (there behind the non-ESP marker, RFC 3948 §2.2), a message for an
// unknown IKE SA, one of IKE version 2 (which no tunnel speaks, so no
// IKEv2 daemon runs) and an ESP-in-UDP packet for an unknown SPI are
// refused and counted; nothing of them stays, and the gateway then
// negotiates with charon (as initiator and as responder) and carries
// traffic.
func TestSwanMalformedISAKMP(t *testing.T) {
	t.Parallel()
	for _, role := range swanRoles {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			x := newLab(t, swanSpec(ismConf{global: pskRule("aes128", "sha", 14, ""), transforms: []string{"esp-aes128-hmac-sha"}, tunnels: []ismTunnel{{}}},
				swanPeer{Proposals: "aes128-sha1-modp2048", ESP: "aes128-sha1"}, swantest.Conf{}))
			malformed, tooLong, noSA, unknown, v2 := badISAKMP(t)
			espUnknownSPI := append([]byte{0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1}, make([]byte, 48)...)
			if err := swantest.InNamespace(x.env.NSSwan, func() error {
				c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IP(swantest.SwanAddr.AsSlice())})
				if err != nil {
					return err
				}
				defer c.Close()
				// Each datagram gets its own initiator cookie: ISM takes
				// a first message with the cookie of one it is still
				// answering for a retransmission of it.
				send := func(port uint16, b []byte) error {
					msg := append([]byte(nil), b...)
					if len(msg) >= 8 {
						rand.Read(msg[:8])
					}
					if port != transport.IKEPort {
						msg = append([]byte{0, 0, 0, 0}, msg...)
					}
					_, err := c.WriteToUDPAddrPort(msg, netip.AddrPortFrom(swantest.ISMAddr, port))
					return err
				}
				for _, b := range append(malformed, tooLong, noSA, unknown, v2) {
					if err := send(transport.IKEPort, b); err != nil {
						return err
					}
					if err := send(4500, b); err != nil {
						return err
					}
				}
				_, err = c.WriteToUDPAddrPort(espUnknownSPI, netip.AddrPortFrom(swantest.ISMAddr, 4500))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			// Every malformed datagram is counted as such on both ports,
			// tooLong and the first message without an SA payload (noSA)
			// too; unknown is counted as for an unknown IKE SA, v2 as
			// dropped by IKEv2.
			wantMalformed := uint64(2*len(malformed) + 2 + 2)
			wantReceived := wantMalformed + 2 + 2
			x.waitFor(t, 10*time.Second, "the datagrams counted", func() bool {
				c := x.ikeCounters(t)
				return c.received >= wantReceived && c.malformed >= wantMalformed && c.unknownSA >= 2
			})
			if c := x.ikeCounters(t); c.received != wantReceived || c.malformed != wantMalformed || c.unknownSA != 2 {
				t.Errorf("IKE counters: %d received, %d malformed, %d unknown SA; want %d, %d, 2", c.received, c.malformed, c.unknownSA, wantReceived, wantMalformed)
			}
			if c := x.g.Statistics().IKEVersions["ikev2"]; c.Received != 2 || c.Dropped != 2 {
				t.Errorf("IKEv2 counters: %d received, %d dropped; want 2 and 2", c.Received, c.Dropped)
			}
			x.waitFor(t, 5*time.Second, "the ESP packet for an unknown SPI counted", func() bool {
				return x.g.Statistics().Engine.Drops["no-sa"] > 0
			})
			x.wantShow(t, "show ipsec statistics", "no-sa")
			// A datagram that fails phase 1 is counted before the IKE
			// SA it opened is gone.
			rows := x.ikeSARows(t)
			for end := time.Now().Add(5 * time.Second); len(rows) != 0 && time.Now().Before(end); rows = x.ikeSARows(t) {
				time.Sleep(50 * time.Millisecond)
			}
			if len(rows) != 0 {
				t.Errorf("IKE SAs left by garbage:\n%s", strings.Join(rows, "\n"))
			}
			x.bringUp(t, role)
			x.traffic(t, ismHost, swanHost)
			if rows := x.ikeSARows(t); len(rows) != 1 || !strings.Contains(rows[0], "established") {
				t.Errorf("show ike sa: want one established IKE SA:\n%s", x.show(t, "show ike sa"))
			}
		})
	}
}
