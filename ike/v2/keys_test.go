package v2

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/ismgw/ism/internal/testvec"
)

// TestIKEv2KDF checks SKEYSEED, prf+, the child SA KEYMAT with and
// without PFS and the rekey SKEYSEED against the NIST CAVP IKEv2 sample
// vector.
func TestIKEv2KDF(t *testing.T) {
	v := testvec.Load(t, "testdata/vectors/nist-sp800-135-ikev2-sha1.txt")
	p, _ := lookupPRF(prfHMACSHA1)
	ni, nr, gir, girNew := v.Hex(t, "ni"), v.Hex(t, "nr"), v.Hex(t, "gir"), v.Hex(t, "girnew")
	seed := p.skeyseed(ni, nr, gir)
	if !bytes.Equal(seed, v.Hex(t, "skeyseed")) {
		t.Fatalf("SKEYSEED %x", seed)
	}
	want := v.Hex(t, "dkm")
	s := append(append([]byte(nil), ni...), nr...)
	s = binary.BigEndian.AppendUint64(s, binary.BigEndian.Uint64(v.Hex(t, "spii")))
	s = binary.BigEndian.AppendUint64(s, binary.BigEndian.Uint64(v.Hex(t, "spir")))
	dkm := p.plus(seed, s, len(want))
	if !bytes.Equal(dkm, want) {
		t.Fatalf("DKM %x", dkm)
	}
	skd := dkm[:p.size()]
	if got := childKeymat(p, skd, nil, ni, nr, nil, len(want)); !bytes.Equal(got, v.Hex(t, "dkmchild")) {
		t.Fatalf("DKM(Child SA) %x", got)
	}
	if got := childKeymat(p, skd, girNew, ni, nr, nil, len(want)); !bytes.Equal(got, v.Hex(t, "dkmchilddh")) {
		t.Fatalf("DKM(Child SA D-H) %x", got)
	}
	if got := p.sum(skd, girNew, ni, nr); !bytes.Equal(got, v.Hex(t, "skeyseedrekey")) {
		t.Fatalf("SKEYSEED(Rekey) %x", got)
	}
	// deriveIKEKeys splits the same prf+ stream in the order of §2.14.
	spii, spir := binary.BigEndian.Uint64(v.Hex(t, "spii")), binary.BigEndian.Uint64(v.Hex(t, "spir"))
	ig, _ := lookupInteg(integHMACSHA196)
	k := deriveIKEKeys(suite{encr: encrFunc{id: encrAESCBC, keyBits: 128}, prf: p, integ: ig}, seed, ni, nr, spii, spir)
	off := 0
	for _, part := range k.all() {
		if !bytes.Equal(part, want[off:off+len(part)]) {
			t.Fatalf("key at %d differs from the DKM", off)
		}
		off += len(part)
	}
	if off != 3*20+2*20+2*16 {
		t.Fatalf("keys take %d bytes", off)
	}
}
