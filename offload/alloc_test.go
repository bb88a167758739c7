//go:build !race

// The race detector changes what allocates, so allocation counts are only
// checked without it.

package offload_test

import (
	"testing"

	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// TestZeroAllocs: steady-state encapsulation and decapsulation allocate
// nothing, for each transform family.
func TestZeroAllocs(t *testing.T) {
	for _, name := range []string{"esp-aes128-gcm16", "esp-aes128-gcm8", "esp-chacha20-poly1305", "esp-aes128-hmac-sha", "esp-3des-hmac-md5", "esp-null-hmac-sha256", "ah-hmac-sha", "esp-des"} {
		tr, _ := transform.Lookup(name)
		o := pairOpts{window: 0, esn: true}
		a, b := newSide(t), newSide(t)
		pair(t, tr, o, a, b)
		in := inner(o, 1000, 1)
		pk := packet(in)
		run := func() {
			pk.Reset(len(in))
			copy(pk.Buf.Bytes(), in)
			pk.SA = a.sa
			a.p.Encap([]*offload.Packet{pk})
			b.p.Decap([]*offload.Packet{pk})
			if pk.Drop != offload.NotDropped {
				t.Fatal(pk.Drop)
			}
		}
		run()
		if n := testing.AllocsPerRun(200, run); n != 0 {
			t.Errorf("%s: %.1f allocations per encap+decap", name, n)
		}
	}
}
