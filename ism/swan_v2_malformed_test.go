package ism

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/ism/transport"
)

// TestSwanV2Malformed: with an IKEv2 tunnel up with charon (set up by
// either end), IKEv2 datagrams from a raw UDP socket in charon's namespace
// to ISM's ports 500 and 4500 — shorter than a header (the IKE layer
// cannot tell its version: malformed), with a length that lies, for an
// unknown IKE SA (INVALID_IKE_SPI), and forged on the established IKE SA
// far outside its window (its integrity check fails before its message ID
// is believed) — are refused and counted by reason; the IKE SA and the
// child SA are the same afterwards and carry traffic.
func TestSwanV2Malformed(t *testing.T) {
	t.Parallel()
	for _, role := range swanRoles {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			side := ismConf{global: "ipsec ike-version 2\n" + pskRule("aes128", "sha256", 14, ""), transforms: []string{"esp-aes128-gcm16"}, tunnels: []ismTunnel{{}}}
			x := newLab(t, swanSpec(side, swanPeer{Version: 2, Proposals: "aes128-sha256-modp2048", ESP: "aes128gcm16"}, swantest.Conf{}))
			x.bringUp(t, role)
			rows := x.ikeSARows(t)
			if len(rows) != 1 {
				t.Fatalf("show ike sa: want one IKE SA:\n%s", x.show(t, "show ike sa"))
			}
			f := strings.Fields(rows[0])
			spis := strings.Split(f[len(f)-1], "/")
			spiI, errI := hex.DecodeString(spis[0])
			spiR, errR := hex.DecodeString(spis[1])
			if len(spis) != 2 || errI != nil || errR != nil {
				t.Fatalf("show ike sa: no SPIs in %q", rows[0])
			}
			_, before := showSAs(t, x.g)
			c0 := x.g.Statistics().IKEVersions["ikev2"]

			header := func(spiI, spiR []byte, exchange byte, flags byte, msgID uint32, length int) []byte {
				h := make([]byte, 28, length)
				copy(h, spiI)
				copy(h[8:], spiR)
				h[16], h[17], h[18], h[19] = 46, 0x20, exchange, flags // SK, version 2.0
				binary.BigEndian.PutUint32(h[20:], msgID)
				binary.BigEndian.PutUint32(h[24:], uint32(length))
				return h
			}
			withSK := func(h []byte) []byte {
				sk := make([]byte, 4+16+32+16) // generic header, IV, ciphertext, ICV
				rand.Read(sk[4:])
				binary.BigEndian.PutUint16(sk[2:], uint16(len(sk)))
				return append(h, sk...)
			}
			randSPI := func() []byte { b := make([]byte, 8); rand.Read(b); return b }
			truncated := header(randSPI(), nil, 34, 0x08, 0, 28)[:20]
			lying := header(randSPI(), nil, 34, 0x08, 0, 1000)
			unknown := withSK(header(randSPI(), randSPI(), 37, 0x08, 1, 28+68))
			// charon's role in the IKE SA decides the flags of its
			// requests: the original initiator's bit when it set it up.
			flags := byte(0)
			if role == "responder" {
				flags = 0x08
			}
			forged := withSK(header(spiI, spiR, 37, flags, 1000, 28+68))
			send := func(c *net.UDPConn, port uint16, b []byte) error {
				if port != transport.IKEPort {
					b = append([]byte{0, 0, 0, 0}, b...)
				}
				_, err := c.WriteToUDPAddrPort(b, netip.AddrPortFrom(swantest.ISMAddr, port))
				return err
			}
			if err := swantest.InNamespace(x.env.NSSwan, func() error {
				c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IP(swantest.SwanAddr.AsSlice())})
				if err != nil {
					return err
				}
				defer c.Close()
				for _, b := range [][]byte{truncated, lying, unknown} {
					for _, port := range []uint16{transport.IKEPort, 4500} {
						if err := send(c, port, b); err != nil {
							return err
						}
					}
				}
				return send(c, 4500, forged)
			}); err != nil {
				t.Fatal(err)
			}
			x.waitFor(t, 10*time.Second, "the datagrams counted", func() bool {
				c := x.g.Statistics().IKEVersions["ikev2"]
				return c.Malformed-c0.Malformed >= 2 && c.UnknownSA-c0.UnknownSA >= 2 && c.Dropped-c0.Dropped >= 1 && x.ikeCounters(t).malformed >= 4
			})
			c := x.g.Statistics().IKEVersions["ikev2"]
			if c.Malformed-c0.Malformed != 2 || c.UnknownSA-c0.UnknownSA != 2 || c.InvalidIKESPISent-c0.InvalidIKESPISent != 2 || c.Dropped-c0.Dropped != 1 {
				t.Errorf("IKEv2 refusals: %d malformed, %d unknown SPI (%d INVALID_IKE_SPI sent), %d dropped; want 2, 2 (2), 1",
					c.Malformed-c0.Malformed, c.UnknownSA-c0.UnknownSA, c.InvalidIKESPISent-c0.InvalidIKESPISent, c.Dropped-c0.Dropped)
			}
			if n := x.ikeCounters(t).malformed; n != 4 {
				t.Errorf("IKE: %d malformed, want 4 (the two truncated datagrams and the two lying ones)", n)
			}
			x.wantShow(t, "show ipsec statistics", "IKEv2 refused")
			if after := x.ikeSARows(t); len(after) != 1 || !strings.Contains(after[0], spis[0]+"/"+spis[1]) {
				t.Errorf("the IKE SA changed:\n%s", x.show(t, "show ike sa"))
			}
			_, sas := showSAs(t, x.g)
			if got, want := saSPIs(sas, swantest.SwanAddr), saSPIs(before, swantest.SwanAddr); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("the child SA changed: %v, was %v", got, want)
			}
			x.traffic(t, ismHost, swanHost)
		})
	}
}
