package ike

import (
	"bytes"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/rand"
	"crypto/sha3"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/ismgw/ism/internal/testvec"
)

// TestMLKEM768Accumulated runs the accumulated ML-KEM-768 vectors through
// this package's key exchange: GenerateKey reads the seed from the
// vectors' stream, Shared decapsulates the right ciphertext and a random
// one (implicit rejection, FIPS 203 §6.3), and the hash of everything
// must be the published one. Encapsulation with a given m goes through
// crypto/mlkem/mlkemtest (Respond draws m from crypto/rand).
func TestMLKEM768Accumulated(t *testing.T) {
	v := testvec.Load(t, "testdata/vectors/mlkem768-accumulated.txt")
	n, _ := strconv.Atoi(v.Get(t, "iterations"))
	want := v.Get(t, "expected")
	if testing.Short() || raceEnabled {
		n, _ = strconv.Atoi(v.Get(t, "iterations-short"))
		want = v.Get(t, "expected-short")
	}
	g, ok := LookupMethod(MLKEM768)
	if !ok || !g.KEM() || g.PublicSize() != 1184 || g.ResponseSize() != 1088 {
		t.Fatalf("method 36: %+v", g)
	}
	s, o := sha3.NewSHAKE128(), sha3.NewSHAKE128()
	var m [32]byte
	ct1 := make([]byte, mlkem.CiphertextSize768)
	for i := 0; i < n; i++ {
		k, err := g.GenerateKey(s)
		if err != nil {
			t.Fatal(err)
		}
		o.Write(k.Public)
		s.Read(m[:])
		ek, err := mlkem.NewEncapsulationKey768(k.Public)
		if err != nil {
			t.Fatal(err)
		}
		key, ct, err := mlkemtest.Encapsulate768(ek, m[:])
		if err != nil {
			t.Fatal(err)
		}
		o.Write(ct)
		o.Write(key)
		got, err := k.Shared(ct)
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("iteration %d: decapsulated %x, %v; encapsulated %x", i, got, err, key)
		}
		s.Read(ct1)
		k1, err := k.Shared(ct1)
		if err != nil {
			t.Fatal(err)
		}
		o.Write(k1)
		k.Zero()
	}
	sum := make([]byte, 32)
	o.Read(sum)
	if got := hex.EncodeToString(sum); got != want {
		t.Fatalf("accumulated %d iterations: %s, want %s (%s)", n, got, want, v.Source)
	}
}

// TestMLKEM768Exchange runs a whole exchange as IKE does (GenerateKey,
// Respond, Shared) and the refusals: wrong sizes both ways, an
// encapsulation key that fails the modulus check of FIPS 203 §7.2, a
// zeroed key; and keeps ML-KEM out of the IKE_SA_INIT groups.
func TestMLKEM768Exchange(t *testing.T) {
	g, _ := LookupMethod(MLKEM768)
	k, err := g.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ct, s1, err := g.Respond(rand.Reader, k.Public)
	if err != nil || len(ct) != 1088 || len(s1) != 32 {
		t.Fatalf("respond: %d %d %v", len(ct), len(s1), err)
	}
	s2, err := k.Shared(ct)
	if err != nil || !bytes.Equal(s1, s2) {
		t.Fatalf("shared secrets differ: %v", err)
	}
	for _, bad := range [][]byte{k.Public[:1183], append(bytes.Clone(k.Public), 0), nil} {
		if _, _, err := g.Respond(rand.Reader, bad); !errors.Is(err, errBadPublic) {
			t.Errorf("Respond took %d bytes: %v", len(bad), err)
		}
	}
	// Every coefficient 0xFFF (≥ q = 3329): not a valid encoding.
	bad := bytes.Clone(k.Public)
	for i := 0; i < 384*3; i++ {
		bad[i] = 0xff
	}
	if _, _, err := g.Respond(rand.Reader, bad); !errors.Is(err, errBadPublic) {
		t.Errorf("Respond took an encapsulation key out of range: %v", err)
	}
	for _, c := range [][]byte{ct[:1087], append(bytes.Clone(ct), 0)} {
		if _, err := k.Shared(c); !errors.Is(err, errBadPublic) {
			t.Errorf("Shared took a %d-byte ciphertext: %v", len(c), err)
		}
	}
	k.Zero()
	if _, err := k.Shared(ct); !errors.Is(err, errZeroed) {
		t.Errorf("a zeroed key decapsulated: %v", err)
	}
	if _, ok := LookupGroup(MLKEM768); ok {
		t.Error("ML-KEM-768 is an IKE_SA_INIT group")
	}
	// A Diffie-Hellman group responds too.
	x, _ := LookupMethod(31)
	kx, _ := x.GenerateKey(rand.Reader)
	pub, sx, err := x.Respond(rand.Reader, kx.Public)
	if err != nil || x.ResponseSize() != 32 {
		t.Fatal(err)
	}
	if s, _ := kx.Shared(pub); !bytes.Equal(s, sx) {
		t.Fatal("X25519 Respond and Shared disagree")
	}
}

// TestValidateAdditionalKE: additional key exchanges are IKEv2 only, known
// methods, at most seven, none twice; optional needs some; ML-KEM is no
// IKE_SA_INIT or PFS group.
func TestValidateAdditionalKE(t *testing.T) {
	pol := func(group int, addke []int, optional bool) Policy {
		return Policy{Encryption: EncAES128, Hash: HashSHA256, Auth: AuthPSK, Group: group, AdditionalKE: addke, AdditionalKEOptional: optional}
	}
	for _, c := range []struct {
		p      Policy
		v1, v2 string // "" valid; else a part of the error
	}{
		{pol(19, []int{MLKEM768}, false), "need IKEv2", ""},
		{pol(31, []int{MLKEM768, 19}, true), "unsupported DH group 31", ""},
		{pol(19, nil, false), "", ""},
		{pol(19, []int{99}, false), "need IKEv2", "unsupported additional key exchange method 99"},
		{pol(19, []int{MLKEM768, MLKEM768}, false), "need IKEv2", "method 36 twice"},
		{pol(19, []int{1, 2, 5, 14, 15, 16, 20, 21}, false), "need IKEv2", "8 additional key exchanges"},
		{pol(19, nil, true), "", "optional additional key exchanges, but none"},
		{pol(MLKEM768, nil, false), "unsupported DH group 36", "unsupported DH group 36"},
	} {
		for v, want := range map[int]string{1: c.v1, 2: c.v2} {
			cfg := Config{Policies: []Policy{c.p}}
			err := cfg.validate(v)
			if want == "" && err != nil {
				t.Errorf("IKEv%d %v: %v", v, c.p, err)
			}
			if want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
				t.Errorf("IKEv%d %v: %v, want %q", v, c.p, err, want)
			}
		}
	}
	if s := pol(19, []int{MLKEM768}, true).String(); s != "aes128-sha256-pre-share-group19-ke1_36-optional" {
		t.Errorf("String: %s", s)
	}
}
