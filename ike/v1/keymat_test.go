package v1

import (
	"bytes"
	"crypto"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ismgw/ism/internal/testvec"
)

func hashOf(name string) crypto.Hash {
	if strings.Contains(name, "sha256") {
		return crypto.SHA256
	}
	return crypto.SHA1
}

// TestSKEYIDVectors checks SKEYID for signatures and pre-shared keys and
// SKEYID_d/a/e against the NIST SP 800-135 sample vectors.
func TestSKEYIDVectors(t *testing.T) {
	files, _ := filepath.Glob("testdata/vectors/nist-sp800-135-ikev1-*.txt")
	if len(files) < 4 {
		t.Fatalf("found %d NIST vector files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			v := testvec.Load(t, f)
			h := hashOf(f)
			var skeyid []byte
			if v.Has("psk") {
				skeyid = SKEYIDPreShared(h, v.Hex(t, "psk"), v.Hex(t, "ni"), v.Hex(t, "nr"))
			} else {
				skeyid = SKEYIDSignature(h, v.Hex(t, "ni"), v.Hex(t, "nr"), v.Hex(t, "gxy"))
			}
			if !bytes.Equal(skeyid, v.Hex(t, "skeyid")) {
				t.Fatalf("SKEYID %x, want %x", skeyid, v.Hex(t, "skeyid"))
			}
			if !v.Has("skeyid_d") {
				return
			}
			var ci, cr Cookie
			copy(ci[:], v.Hex(t, "ckyi"))
			copy(cr[:], v.Hex(t, "ckyr"))
			k := DeriveSKEYIDs(h, v.Hex(t, "skeyid"), v.Hex(t, "gxy"), ci, cr)
			for name, got := range map[string][]byte{"skeyid_d": k.D, "skeyid_a": k.A, "skeyid_e": k.E} {
				if !bytes.Equal(got, v.Hex(t, name)) {
					t.Errorf("%s %x, want %x", name, got, v.Hex(t, name))
				}
			}
			// One flipped bit of g^xy changes every derived key.
			gxy := v.Hex(t, "gxy")
			gxy[0] ^= 1
			if bad := DeriveSKEYIDs(h, v.Hex(t, "skeyid"), gxy, ci, cr); bytes.Equal(bad.D, k.D) || bytes.Equal(bad.E, k.E) {
				t.Error("derived keys do not depend on g^xy")
			}
		})
	}
}

// TestAppendixB checks the phase 1 key expansion (RFC 2409 Appendix B) and
// the quick mode KEYMAT expansion (RFC 2409 §5.5).
func TestAppendixB(t *testing.T) {
	files, _ := filepath.Glob("testdata/vectors/nss-ikev1-appendix-b-*.txt")
	if len(files) != 2 {
		t.Fatalf("found %d vector files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			v := testvec.Load(t, f)
			h := hashOf(f)
			e := v.Hex(t, "skeyid_e")
			for _, n := range []string{"ka132", "ka40", "ka32", "ka15"} {
				if !v.Has(n) {
					continue
				}
				want := v.Hex(t, n)
				if got := EncryptionKey(h, e, len(want)); !bytes.Equal(got, want) {
					t.Errorf("%s: %x, want %x", n, got, want)
				}
			}
			for _, n := range []string{"keymat132", "keymat32", "keymat15"} {
				if !v.Has(n) {
					continue
				}
				want := v.Hex(t, n)
				if got := expand(h, e, v.Hex(t, "seed"), len(want)); !bytes.Equal(got, want) {
					t.Errorf("%s: %x, want %x", n, got, want)
				}
			}
		})
	}
}

// TestKeyMatSeed checks that KEYMAT hashes [g^xy |] protocol | SPI | Ni | Nr
// in that order (RFC 2409 §5.5): computing it with expand over the seed
// written out by hand gives the same bytes.
func TestKeyMatSeed(t *testing.T) {
	key := []byte("skeyid_d-0123456789")
	ni, nr, gxy := []byte("nonce-i-12345678"), []byte("nonce-r-87654321"), []byte{9, 8, 7}
	seed := append(append(append([]byte{}, gxy...), 3, 0xc0, 0xde, 0, 1), append(ni, nr...)...)
	want := expand(crypto.SHA1, key, seed, 44)
	if got := KeyMat(crypto.SHA1, key, gxy, 3, 0xc0de0001, ni, nr, 44); !bytes.Equal(got, want) {
		t.Fatalf("KEYMAT %x, want %x", got, want)
	}
	if got := KeyMat(crypto.SHA1, key, nil, 3, 0xc0de0002, ni, nr, 44); bytes.Equal(got, want) {
		t.Fatal("KEYMAT does not depend on the SPI and g^xy")
	}
}
