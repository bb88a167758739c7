package v2

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/ismgw/ism/ike"
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

// TestKeysDropAuth: an established IKE SA keeps SK_d, SK_a and SK_e in a
// buffer of their size, SK_pi and SK_pr zeroed and gone (issue 13);
// packKeys takes the seven keys with SK_p (a format-1 record) or
// without, and refuses lengths that do not go together.
func TestKeysDropAuth(t *testing.T) {
	ig, _ := lookupInteg(integHMACSHA256128)
	su := suite{encr: encrFunc{id: encrAESCBC, keyBits: 128}, prf: prfFunc{id: prfHMACSHA256, hash: crypto.SHA256}, integ: ig}
	k := deriveIKEKeys(su, bytes.Repeat([]byte{7}, 32), []byte("ni"), []byte("nr"), 1, 2)
	want := k.all()
	for i := range want {
		want[i] = bytes.Clone(want[i])
	}
	old := k.km[:cap(k.km)]
	k.dropAuth()
	got := k.all()
	for i := range 5 {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("key %d changed", i)
		}
	}
	if got[5] != nil || got[6] != nil {
		t.Errorf("SK_pi %x, SK_pr %x kept", got[5], got[6])
	}
	if len(k.km) != cap(k.km) || len(k.km) != 32+2*32+2*16 {
		t.Errorf("buffer of %d bytes (cap %d)", len(k.km), cap(k.km))
	}
	if !bytes.Equal(old, make([]byte, len(old))) {
		t.Error("the old buffer is not zeroed")
	}
	for name, parts := range map[string][7][]byte{"with SK_p": want, "without": got} {
		p, err := packKeys(parts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if all := p.all(); !bytes.Equal(all[0], want[0]) || !bytes.Equal(all[4], want[4]) || !bytes.Equal(all[6], parts[6]) {
			t.Errorf("%s: keys differ", name)
		}
	}
	bad := want
	bad[6] = nil // SK_pi without SK_pr
	if _, err := packKeys(bad); !errors.Is(err, errKeyLengths) {
		t.Errorf("SK_pi without SK_pr: %v", err)
	}
	bad = got
	bad[2] = bad[2][:3]
	if _, err := packKeys(bad); !errors.Is(err, errKeyLengths) {
		t.Errorf("SK_ai and SK_ar of different lengths: %v", err)
	}
	d := &Daemon{}
	for f, ok := range map[uint16]bool{1: true, exportFormat: true, exportFormat + 1: false} {
		if d.CanImport(ike.SAState{Version: 2, Format: f}) != ok {
			t.Errorf("format %d: CanImport %v", f, !ok)
		}
	}
}
