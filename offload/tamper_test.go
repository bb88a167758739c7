package offload_test

import (
	"bytes"
	"testing"

	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// TestTamper flips every byte the ICV covers, one at a time, for every
// transform with integrity: each change must be dropped, and the SA's state
// must not change (the untouched packet still decapsulates afterwards).
func TestTamper(t *testing.T) {
	for _, tr := range transform.All() {
		if !tr.Authenticates() {
			continue
		}
		for _, v6 := range []bool{false, true} {
			o := pairOpts{v6: v6, window: 64}
			t.Run(tr.Name()+map[bool]string{false: "/v4", true: "/v6"}[v6], func(t *testing.T) {
				a, b := newSide(t), newSide(t)
				pair(t, tr, o, a, b)
				wire := encap(t, a, inner(o, 100, 3))
				for i := firstCovered(tr, v6); i < len(wire); i++ {
					if mutable(tr, v6, i) {
						continue
					}
					bad := bytes.Clone(wire)
					bad[i] ^= 0x80
					if _, drop := decap(b, bad); drop == offload.NotDropped {
						t.Fatalf("byte %d tampered, packet accepted", i)
					} else if i >= strictFrom(tr, v6) && drop != offload.DropICV && drop != offload.DropMalformed {
						t.Fatalf("byte %d tampered: drop %v, want icv-failure", i, drop)
					}
				}
				if _, drop := decap(b, wire); drop != offload.NotDropped {
					t.Fatalf("original packet dropped after tampering: %v", drop)
				}
				if n := b.sa.Counters().Drops(offload.DropICV); n == 0 {
					t.Fatal("no ICV failures counted")
				}
			})
		}
	}
}

// firstCovered is the first byte of the wire packet the ICV protects: the
// ESP header, or for AH the whole outer packet.
func firstCovered(tr transform.Transform, v6 bool) int {
	if tr.Protocol == transform.AH {
		return 0
	}
	if v6 {
		return 40
	}
	return 20
}

// strictFrom is the first byte after the SA's identity (addresses, SPI) and
// sequence number: from there on a change can only fail the ICV (or, for
// lengths, the parse).
func strictFrom(tr transform.Transform, v6 bool) int {
	ip := 20
	if v6 {
		ip = 40
	}
	if tr.Protocol == transform.AH {
		return ip + 12
	}
	return ip + 8
}

// mutable reports whether byte i of an AH packet's outer header is a field
// AH does not protect (RFC 4302 §3.3.3.1), or the IPv4 header checksum.
func mutable(tr transform.Transform, v6 bool, i int) bool {
	if tr.Protocol != transform.AH {
		return false
	}
	if v6 {
		return i < 4 || i == 7 // version/class/flow label, hop limit
	}
	switch i {
	case 1, 6, 7, 8, 10, 11: // TOS, flags/fragment, TTL, checksum
		return true
	}
	return false
}
