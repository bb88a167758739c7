package v1

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// seedMessages returns well-formed messages of each kind for the fuzzers.
func seedMessages() [][]byte {
	sa := SA{DOI: DOIIPsec, Situation: SituationIdentityOnly, Proposals: []Proposal{{Number: 1, Protocol: ProtoISAKMP,
		Transforms: []Transform{phase1Transform(1, ike.Policy{Encryption: ike.EncAES256, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14})}}}}
	tr, _ := transform.Lookup("esp-aes128-hmac-sha")
	qsa := SA{DOI: DOIIPsec, Situation: SituationIdentityOnly, Proposals: []Proposal{{Number: 1, Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4},
		Transforms: []Transform{ipsecTransform(1, tr, childAttrs{Encap: EncapUDPTunnel, Group: 5, Lifetime: ipsec.Lifetime{Time: 3600e9, Bytes: 1 << 30}})}}}}
	h := HeaderFields{ICookie: Cookie{1, 2, 3, 4, 5, 6, 7, 8}, Exchange: ExchangeMain}
	id := phase1ID(ike.Identity{Kind: ike.IDUserFQDN, Name: "user@gw.example"})
	n := Notify{DOI: DOIIPsec, Protocol: ProtoESP, Type: NotifyResponderLifetime, SPI: []byte{1, 2, 3, 4}, Data: []byte{0x80, 1, 0, 1}}
	del := Delete{DOI: DOIIPsec, Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{{9, 9, 9, 9}}}
	dpd := Notify{DOI: DOIIPsec, Protocol: ProtoISAKMP, Type: NotifyDPDRUThere, SPI: make([]byte, 16), Data: []byte{0, 0, 0x12, 0x34}}
	return [][]byte{
		encodeMessage(h, []outPayload{{PayloadSA, sa.marshal()}, {PayloadVendorID, natTVendorID}, {PayloadVendorID, dpdVendorID}}),
		encodeMessage(h, []outPayload{{PayloadKE, make([]byte, 256)}, {PayloadNonce, make([]byte, 32)}, {PayloadNATD, make([]byte, 20)}, {PayloadNATD, make([]byte, 20)}}),
		encodeMessage(HeaderFields{Exchange: ExchangeQuick, MessageID: 7}, []outPayload{{PayloadHash, make([]byte, 20)}, {PayloadSA, qsa.marshal()},
			{PayloadID, selectorID(mustSelector("198.51.100.0/24")).marshal()}, {PayloadID, id.marshal()}}),
		encodeMessage(HeaderFields{Exchange: ExchangeInformational, MessageID: 9}, []outPayload{{PayloadNotify, n.marshal()}, {PayloadDelete, del.marshal()},
			{PayloadNATOA, []byte{1, 0, 0, 0, 192, 0, 2, 1}}, {PayloadCert, []byte{4, 0x30, 0}}}),
		encodeMessage(HeaderFields{ICookie: h.ICookie, RCookie: Cookie{8, 7, 6, 5, 4, 3, 2, 1}, Exchange: ExchangeInformational, MessageID: 11},
			[]outPayload{{PayloadHash, make([]byte, 20)}, {PayloadNotify, dpd.marshal()}}),
	}
}

// FuzzISAKMP parses arbitrary bytes as an ISAKMP message and each payload
// with its own parser: no panic, no read past the end, and what parses
// re-encodes to bytes that parse to the same thing.
func FuzzISAKMP(f *testing.F) {
	for _, m := range seedMessages() {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h := Header(b)
		if h.IsValid() {
			_ = h.Fields()
		}
		m, err := ParseMessage(b)
		if err != nil {
			if len(b) >= HeaderSize {
				// Trailing padding of an encrypted body must not break
				// the chain parser either.
				_, _ = ParsePayloads(Header(b).NextPayload(), b[HeaderSize:], true)
			}
			return
		}
		for _, p := range m.Payloads {
			if len(p.Raw) != len(p.Body)+genericHeaderSize {
				t.Fatalf("payload %v: raw %d body %d", p.Type, len(p.Raw), len(p.Body))
			}
			switch p.Type {
			case PayloadSA:
				sa, err := ParseSA(p.Body)
				if err != nil {
					continue
				}
				again, err := ParseSA(sa.marshal())
				if err != nil || !equalSA(sa, again) {
					t.Fatalf("SA does not survive a round trip: %v", err)
				}
				for _, prop := range sa.Proposals {
					for i := range prop.Transforms {
						_, _ = parsePhase1Transform(&prop.Transforms[i])
						_, _, _ = parseIPsecTransform(prop.Protocol, &prop.Transforms[i])
					}
				}
			case PayloadID:
				if id, err := ParseID(p.Body); err == nil {
					if !bytes.Equal(id.marshal(), p.Body) {
						t.Fatal("ID does not survive a round trip")
					}
					_, _ = identityOf(id)
					_, _ = selectorOf(id)
				}
			case PayloadNotify:
				if n, err := ParseNotify(p.Body); err == nil {
					if !bytes.Equal(n.marshal(), p.Body) {
						t.Fatal("notify does not survive a round trip")
					}
					_, _ = parseResponderLifetime(n)
				}
			case PayloadDelete:
				if d, err := ParseDelete(p.Body); err == nil && !bytes.Equal(d.marshal(), p.Body) {
					t.Fatal("delete does not survive a round trip")
				}
			case PayloadCert, PayloadCertReq:
				_, _ = ParseCert(p.Body)
			case PayloadNATOA:
				_, _ = ParseNATOA(p.Body)
			}
		}
	})
}

func equalSA(a, b *SA) bool {
	if a.DOI != b.DOI || a.Situation != b.Situation || len(a.Proposals) != len(b.Proposals) {
		return false
	}
	for i := range a.Proposals {
		pa, pb := a.Proposals[i], b.Proposals[i]
		if pa.Number != pb.Number || pa.Protocol != pb.Protocol || !bytes.Equal(pa.SPI, pb.SPI) || len(pa.Transforms) != len(pb.Transforms) {
			return false
		}
		for j := range pa.Transforms {
			ta, tb := pa.Transforms[j], pb.Transforms[j]
			if ta.Number != tb.Number || ta.ID != tb.ID || len(ta.Attrs) != len(tb.Attrs) {
				return false
			}
			for k := range ta.Attrs {
				if ta.Attrs[k] != tb.Attrs[k] {
					return false
				}
			}
		}
	}
	return true
}

// FuzzReceive gives arbitrary datagrams to a daemon: every one is counted
// and the daemon neither panics nor stops answering.
func FuzzReceive(f *testing.F) {
	for _, m := range seedMessages() {
		f.Add(m)
	}
	cfg := baseConfig()
	cfg.Tunnels = []ike.Tunnel{pairTunnel(f, "t1", addrB, addrA, netB, netA, "esp-aes128-hmac-sha")}
	cfg.Tunnels[0].DPD = &ipsec.DPD{Enabled: true}
	cfg.Tunnels[0].BackupDestination = addrC
	d, err := New(cfg, noInstaller{}, dropTransport{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	local, remote := netip.AddrPortFrom(addrB, 500), netip.AddrPortFrom(addrA, 500)
	f.Fuzz(func(t *testing.T, b []byte) {
		before := d.Status().Counters.Received
		d.Receive(local, remote, b)
		if d.Status().Counters.Received != before+1 {
			t.Fatal("datagram not counted")
		}
	})
}

func mustSelector(s string) selectorT {
	return selectorFromPrefix(netip.MustParsePrefix(s))
}
