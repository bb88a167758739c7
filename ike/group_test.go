package ike

import (
	"bytes"
	"crypto/rand"
	"math/big"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ismgw/ism/internal/testvec"
)

// piScaled returns floor(pi * 2^prec), by Machin's formula
// pi = 16 arctan(1/5) - 4 arctan(1/239), with guard bits.
func piScaled(prec uint) *big.Int {
	const guard = 64
	one := new(big.Int).Lsh(big.NewInt(1), prec+guard)
	arctan := func(x int64) *big.Int {
		sum := new(big.Int)
		xx := big.NewInt(x * x)
		term := new(big.Int).Div(one, big.NewInt(x))
		for k := int64(0); term.Sign() != 0; k++ {
			t := new(big.Int).Div(term, big.NewInt(2*k+1))
			if k%2 == 0 {
				sum.Add(sum, t)
			} else {
				sum.Sub(sum, t)
			}
			term.Div(term, xx)
		}
		return sum
	}
	pi := new(big.Int).Mul(arctan(5), big.NewInt(16))
	pi.Sub(pi, new(big.Int).Mul(arctan(239), big.NewInt(4)))
	return pi.Rsh(pi, guard)
}

// TestMODPPrimes checks each MODP prime bit for bit against the RFC's hex
// and against the RFC's formula, 2^n - 2^(n-64) - 1 + 2^64 * ([2^e pi] + k),
// computed here from pi; and that p and (p-1)/2 are prime.
func TestMODPPrimes(t *testing.T) {
	files, _ := filepath.Glob("testdata/vectors/rfc*-modp*.txt")
	if len(files) != 6 {
		t.Fatalf("found %d MODP vector files", len(files))
	}
	pi := piScaled(4096)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			v := testvec.Load(t, f)
			id, _ := strconv.Atoi(v.Get(t, "group"))
			n, _ := strconv.Atoi(v.Get(t, "bits"))
			e, _ := strconv.Atoi(v.Get(t, "e"))
			k, _ := strconv.ParseInt(v.Get(t, "k"), 10, 64)
			g, ok := LookupGroup(id)
			if !ok {
				t.Fatalf("no group %d", id)
			}
			rfc := new(big.Int).SetBytes(v.Hex(t, "p"))
			if g.Prime().Cmp(rfc) != 0 {
				t.Fatal("prime differs from the RFC's")
			}
			// [2^e pi] = floor(pi * 2^4096) >> (4096 - e)
			x := new(big.Int).Rsh(pi, uint(4096-e))
			x.Add(x, big.NewInt(k))
			x.Lsh(x, 64)
			p := new(big.Int).Lsh(big.NewInt(1), uint(n))
			p.Sub(p, new(big.Int).Lsh(big.NewInt(1), uint(n-64)))
			p.Sub(p, big.NewInt(1))
			p.Add(p, x)
			if p.Cmp(rfc) != 0 {
				t.Fatal("prime differs from the RFC's formula")
			}
			if rfc.BitLen() != n || g.PublicSize() != n/8 {
				t.Fatalf("prime of %d bits, public size %d", rfc.BitLen(), g.PublicSize())
			}
			q := new(big.Int).Rsh(rfc, 1)
			if !rfc.ProbablyPrime(2) || !q.ProbablyPrime(2) {
				t.Fatal("not a safe prime")
			}
		})
	}
}

// TestECPVectors checks the ECP groups against RFC 5903 §8: the public
// values x|y of both sides and the shared secret, which IKE takes as the x
// coordinate only (RFC 5903 §9).
func TestECPVectors(t *testing.T) {
	files, _ := filepath.Glob("testdata/vectors/rfc5903-*.txt")
	if len(files) != 3 {
		t.Fatalf("found %d ECP vector files", len(files))
	}
	ids := map[string]int{"ecp256": 19, "ecp384": 20, "ecp521": 21}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			v := testvec.Load(t, f)
			var id int
			for name, n := range ids {
				if bytes.Contains([]byte(f), []byte(name)) {
					id = n
				}
			}
			g, _ := LookupGroup(id)
			ki, err := g.NewKey(v.Hex(t, "i"))
			if err != nil {
				t.Fatal(err)
			}
			kr, err := g.NewKey(v.Hex(t, "r"))
			if err != nil {
				t.Fatal(err)
			}
			gi := append(v.Hex(t, "gix"), v.Hex(t, "giy")...)
			gr := append(v.Hex(t, "grx"), v.Hex(t, "gry")...)
			if !bytes.Equal(ki.Public, gi) || !bytes.Equal(kr.Public, gr) {
				t.Fatal("public values differ from RFC 5903")
			}
			si, err := ki.Shared(gr)
			if err != nil {
				t.Fatal(err)
			}
			sr, err := kr.Shared(gi)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(si, v.Hex(t, "girx")) || !bytes.Equal(sr, si) {
				t.Fatalf("shared secret %x, want %x", si, v.Hex(t, "girx"))
			}
			bad := append([]byte(nil), gr...)
			bad[len(bad)-1] ^= 1
			if _, err := ki.Shared(bad); err == nil {
				t.Fatal("accepted a point off the curve")
			}
		})
	}
}

// TestDHAgreement runs every group both ways and refuses degenerate
// public values.
func TestDHAgreement(t *testing.T) {
	for _, id := range GroupIDs() {
		g, _ := LookupGroup(id)
		a, err := g.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := g.GenerateKey(rand.Reader)
		sa, err := a.Shared(b.Public)
		if err != nil {
			t.Fatalf("%v: %v", g, err)
		}
		sb, _ := b.Shared(a.Public)
		if !bytes.Equal(sa, sb) || len(a.Public) != g.PublicSize() {
			t.Fatalf("%v: no agreement", g)
		}
		if _, err := a.Shared(b.Public[1:]); err == nil {
			t.Fatalf("%v: accepted a short public value", g)
		}
		if p := g.Prime(); p != nil {
			for _, y := range []*big.Int{big.NewInt(0), big.NewInt(1), new(big.Int).Sub(p, big.NewInt(1)), p} {
				if _, err := a.Shared(y.FillBytes(make([]byte, g.PublicSize()))); err == nil {
					t.Fatalf("%v: accepted public value %v", g, y)
				}
			}
		}
		a.Zero()
		if _, err := a.Shared(b.Public); err == nil {
			t.Fatalf("%v: zeroed key still usable", g)
		}
	}
}

// TestCurve25519 checks group 31 against RFC 7748 §6.1 and refuses the
// all-zero shared secret of a low-order point (RFC 8031 §2.3).
func TestCurve25519(t *testing.T) {
	v := testvec.Load(t, "testdata/vectors/rfc7748-6.1-x25519.txt")
	g, ok := LookupGroup(31)
	if !ok || g.PublicSize() != 32 {
		t.Fatal("no group 31")
	}
	a, err := g.NewKey(v.Hex(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := g.NewKey(v.Hex(t, "b"))
	if !bytes.Equal(a.Public, v.Hex(t, "apub")) || !bytes.Equal(b.Public, v.Hex(t, "bpub")) {
		t.Fatalf("public values %x %x differ from RFC 7748", a.Public, b.Public)
	}
	ka, err := a.Shared(b.Public)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := b.Shared(a.Public)
	if !bytes.Equal(ka, v.Hex(t, "k")) || !bytes.Equal(kb, ka) {
		t.Fatalf("shared secret %x", ka)
	}
	if _, err := a.Shared(make([]byte, 32)); err == nil {
		t.Fatal("accepted a low-order public value")
	}
}
