package checkpoint

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// sampleKey makes every key byte of the sample tunnels distinctive, so that
// a search of a file or a keyspace for them cannot match by chance.
func sampleKey(n int, seed byte) ipsec.Key {
	if n == 0 {
		return nil
	}
	k := make(ipsec.Key, n)
	for i := range k {
		k[i] = seed ^ byte(i*37+11)
	}
	return k
}

// sampleTunnel returns a tunnel with an outbound and an inbound SA of
// transform name, and an IKE SA record.
func sampleTunnel(t testing.TB, name, tr string, seed byte) Tunnel {
	t.Helper()
	x, ok := transform.Lookup(tr)
	if !ok {
		t.Fatalf("transform %s", tr)
	}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	out := SA{
		ID: ipsec.SAID{Dst: b, SPI: 0x1000 + uint32(seed), Protocol: x.Protocol}, Direction: ipsec.Outbound,
		Transform: x, Mode: ipsec.Tunnel, Src: a, Dst: b, ESN: true, ReplayWindow: 1024,
		Limits:    ipsec.Limits{Soft: ipsec.Lifetime{Time: 50 * time.Minute}, Hard: ipsec.Lifetime{Time: time.Hour, Bytes: 1 << 40}},
		Used:      ipsec.Lifetime{Time: 90 * time.Second, Bytes: 123456, Packets: 789},
		CipherKey: sampleKey(x.CipherKeyLen(), seed), AuthKey: sampleKey(x.AuthKeyLen(), seed+1),
		Seq: 1<<32 + 789, Rate: 1234.5,
	}
	in := out
	in.ID = ipsec.SAID{Dst: a, SPI: 0x2000 + uint32(seed), Protocol: x.Protocol}
	in.Direction, in.Src, in.Dst, in.Seq, in.Rate = ipsec.Inbound, b, a, 0, 0
	in.CipherKey, in.AuthKey = sampleKey(x.CipherKeyLen(), seed+2), sampleKey(x.AuthKeyLen(), seed+3)
	in.Replay = ipsec.ReplayState{Size: 1024}
	for s := uint64(1<<32 + 500); s < 1<<32+800; s += 3 {
		in.Replay.Set(s)
	}
	return Tunnel{Name: name, SAs: []SA{out, in}, IKE: []IKESA{{Version: 2, Format: 1, Data: sampleKey(200, seed+4)}}}
}

// secrets returns every key of s, raw.
func secrets(s *State) [][]byte {
	var out [][]byte
	for _, t := range s.Tunnels {
		for _, sa := range t.SAs {
			out = append(out, sa.CipherKey, sa.AuthKey)
		}
		for _, k := range t.IKE {
			out = append(out, k.Data)
		}
	}
	return out
}

// findSecret reports the first key of s found in b, raw or in hex (either
// case), or -1.
func findSecret(b []byte, keys [][]byte) int {
	low := strings.ToLower(string(b))
	for i, k := range keys {
		if len(k) < 8 {
			continue
		}
		if bytes.Contains(b, k) || strings.Contains(low, hex.EncodeToString(k)) {
			return i
		}
	}
	return -1
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func sprint(v any) string { return fmt.Sprintf("%v %+v %#v", v, v, v) }
