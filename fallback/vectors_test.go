package fallback_test

// Known-answer tests of the software engine's sessions: HMAC (RFC 2202,
// RFC 4231, RFC 4868 §2.7.2), DES and 3DES in CBC mode (NIST SP 800-20,
// FIPS 81, CAVP TCBCMMT3) and ChaCha20-Poly1305 (RFC 8439 §2.8.2). The
// vectors are the files in testdata/vectors; every op runs both on the
// caller's goroutine (Process) and through a queue pair.

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testvec"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// slack is the tailroom every test buffer has after the packet.
const slack = 64

func vectors(t *testing.T, pattern string) []*testvec.Vector {
	t.Helper()
	return testvec.Glob(t, filepath.Join("testdata", "vectors", pattern))
}

func lookup(t *testing.T, name string) transform.Transform {
	t.Helper()
	tr, ok := transform.Lookup(name)
	if !ok {
		t.Fatalf("transform %q is not in the table", name)
	}
	return tr
}

func newSession(t *testing.T, d *fallback.Driver, tr transform.Transform, dir ipsec.Direction, ck, ak []byte) driver.Session {
	t.Helper()
	s, err := d.NewSession(driver.SessionConfig{
		Action: driver.CPUCrypto, Transform: tr, Direction: dir, SPI: 0x1000,
		CipherKey: ipsec.Key(ck).Clone(), AuthKey: ipsec.Key(ak).Clone(),
	})
	if err != nil {
		t.Fatalf("%s %s session: %v", tr, dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newBuffer returns a buffer holding p with slack bytes of tailroom.
func newBuffer(p []byte) *driver.Buffer {
	b := &driver.Buffer{Mem: make([]byte, len(p)+slack), Len: len(p)}
	copy(b.Mem, p)
	return b
}

// modes are the two ways an op reaches the engine.
var modes = []string{"process", "queue"}

// exec runs op through the driver, synchronously or through queue pair 0,
// and returns its status.
func exec(t *testing.T, d *fallback.Driver, mode string, op *driver.Op) driver.Status {
	t.Helper()
	op.Status = driver.NotProcessed
	if mode == "process" {
		if n := d.Process([]*driver.Op{op}); n != 1 {
			t.Fatalf("Process returned %d", n)
		}
		return op.Status
	}
	qp := d.QueuePair(0)
	if n := qp.Enqueue([]*driver.Op{op}); n != 1 {
		t.Fatalf("Enqueue took %d ops", n)
	}
	out := make([]*driver.Op, 1)
	// A guard against a hang, not a timing assertion.
	for deadline := time.Now().Add(time.Minute); ; runtime.Gosched() {
		if qp.Dequeue(out) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("op never completed")
		}
	}
	if out[0] != op {
		t.Fatal("dequeued a different op")
	}
	return op.Status
}

func newDriver(t *testing.T) *fallback.Driver {
	d := fallback.New(1)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// hmacKey returns the key of the transform's length that HMAC treats exactly
// as k (RFC 2104 §2: a key shorter than the hash's block is padded with
// zeros, a longer one is replaced by its hash), and false when there is none
// (a key longer than the transform's but not longer than the block).
func hmacKey(k []byte, i transform.Integrity) ([]byte, bool) {
	var h func() hash.Hash
	block := 64
	switch i {
	case transform.HMACMD596:
		h = md5.New
	case transform.HMACSHA196:
		h = sha1.New
	case transform.HMACSHA256128:
		h = sha256.New
	case transform.HMACSHA384192:
		h, block = sha512.New384, 128
	case transform.HMACSHA512256:
		h, block = sha512.New, 128
	}
	n := i.KeyLen()
	switch {
	case len(k) > block:
		s := h()
		s.Write(k)
		return s.Sum(nil), true
	case len(k) <= n:
		return append(append([]byte(nil), k...), make([]byte, n-len(k))...), true
	}
	return nil, false
}

// hmacCase is one HMAC known answer under one transform.
type hmacCase struct {
	name string
	tr   transform.Transform
	key  []byte
	data []byte
	want []byte // the published output, possibly longer or shorter than the ICV
}

func hmacCases(t *testing.T) []hmacCase {
	var cs []hmacCase
	for _, v := range vectors(t, "rfc2202-*.txt") {
		c := hmacCase{v.Name(), lookup(t, v.Get(t, "transform")), v.Hex(t, "key"), v.Hex(t, "data"), v.Hex(t, "digest")}
		if v.Has("digest-96") && !bytes.Equal(v.Hex(t, "digest-96"), c.want[:12]) {
			t.Fatalf("%s: digest-96 is not the start of digest", v.Path)
		}
		cs = append(cs, c)
	}
	for _, v := range vectors(t, "rfc4868-*.txt") {
		c := hmacCase{v.Name(), lookup(t, v.Get(t, "transform")), v.Hex(t, "key"), v.Hex(t, "data"), v.Hex(t, "auth")}
		if prf := v.Hex(t, "prf"); !bytes.HasPrefix(prf, c.want) || len(c.want) != c.tr.ICVLen() {
			t.Fatalf("%s: auth is not the %d-byte truncation of prf", v.Path, c.tr.ICVLen())
		}
		cs = append(cs, c)
	}
	for _, v := range vectors(t, "rfc4231-*.txt") {
		for _, bits := range []string{"256", "384", "512"} {
			tr := lookup(t, "ah-hmac-sha"+bits)
			cs = append(cs, hmacCase{v.Name() + "-sha" + bits, tr, v.Hex(t, "key"), v.Hex(t, "data"), v.Hex(t, "hmac-sha-"+bits)})
		}
	}
	return cs
}

func TestHMACVectors(t *testing.T) {
	d := newDriver(t)
	ran, refused := 0, 0
	for _, c := range hmacCases(t) {
		t.Run(c.name, func(t *testing.T) {
			key, ok := hmacKey(c.key, c.tr.Integrity)
			if len(c.key) != c.tr.AuthKeyLen() {
				_, err := d.NewSession(driver.SessionConfig{Action: driver.CPUCrypto, Transform: c.tr, Direction: ipsec.Outbound, AuthKey: ipsec.Key(c.key)})
				if !errors.Is(err, driver.ErrBadKey) {
					t.Fatalf("a %d-byte key for %s: got %v, want ErrBadKey", len(c.key), c.tr, err)
				}
			}
			if !ok {
				refused++
				return
			}
			ran++
			for _, mode := range modes {
				checkHMAC(t, d, mode, c, key)
			}
		})
	}
	// RFC 2202 case 4 (a 25-byte key) has no equivalent 16- or 20-byte key.
	if ran != 44 || refused != 2 {
		t.Errorf("ran %d vectors and refused %d, want 44 and 2", ran, refused)
	}
}

func checkHMAC(t *testing.T, d *fallback.Driver, mode string, c hmacCase, key []byte) {
	t.Helper()
	icvLen := c.tr.ICVLen()
	out := newSession(t, d, c.tr, ipsec.Outbound, nil, key)
	in := newSession(t, d, c.tr, ipsec.Inbound, nil, key)
	n := len(c.data)

	b := newBuffer(c.data)
	op := &driver.Op{Session: out, Buf: b, AuthLen: n, DigestOff: n}
	if st := exec(t, d, mode, op); st != driver.OK {
		t.Fatalf("%s: compute: %v", mode, st)
	}
	icv := b.Mem[n : n+icvLen]
	// RFC 4231 case 5 publishes 128 bits only; compare what there is.
	m := min(len(c.want), icvLen)
	if !bytes.Equal(icv[:m], c.want[:m]) {
		t.Fatalf("%s: ICV %x, want %x", mode, icv, c.want[:m])
	}
	if !bytes.Equal(b.Mem[:n], c.data) {
		t.Fatalf("%s: the authenticated data changed", mode)
	}
	good := append(append([]byte(nil), c.data...), icv...)

	verify := func(pkt []byte) driver.Status {
		b := newBuffer(pkt)
		op := &driver.Op{Session: in, Buf: b, AuthLen: n, DigestOff: n}
		st := exec(t, d, mode, op)
		if !bytes.Equal(b.Mem[:len(pkt)], pkt) {
			t.Fatalf("%s: verification changed the packet", mode)
		}
		return st
	}
	if st := verify(good); st != driver.OK {
		t.Fatalf("%s: verify: %v", mode, st)
	}
	for _, pos := range []int{0, n / 2, n - 1, n, n + icvLen - 1} {
		if pos >= len(good) {
			continue
		}
		bad := append([]byte(nil), good...)
		bad[pos] ^= 0x01
		if st := verify(bad); st != driver.AuthFailed {
			t.Fatalf("%s: bit flipped at %d: %v, want auth-failed", mode, pos, st)
		}
	}
}

// cbcCase is one CBC known answer.
type cbcCase struct {
	name       string
	tr         transform.Transform
	key, iv    []byte
	plain, enc []byte
}

func cbcCases(t *testing.T) []cbcCase {
	var cs []cbcCase
	table := testvec.Load(t, filepath.Join("testdata", "vectors", "nist-sp800-20-table-a1.txt"))
	key, iv := table.Hex(t, "key"), table.Hex(t, "iv")
	rows := table.Records("round")
	if len(rows) != 64 {
		t.Fatalf("Table A.1 has %d rows, want 64", len(rows))
	}
	for _, r := range rows {
		name := "sp800-20-a1-" + r.Get(t, "round")
		pt, ct := r.Hex(t, "plaintext"), r.Hex(t, "ciphertext")
		cs = append(cs,
			cbcCase{name + "-des", lookup(t, r.Get(t, "transform")), key, iv, pt, ct},
			// Three equal keys make TDEA the DES of the table (SP 800-20 §2).
			cbcCase{name + "-3des", lookup(t, "esp-3des"), bytes.Repeat(key, 3), iv, pt, ct})
	}
	v := testvec.Load(t, filepath.Join("testdata", "vectors", "fips81-cbc.txt"))
	cs = append(cs, cbcCase{v.Name(), lookup(t, v.Get(t, "transform")), v.Hex(t, "key"), v.Hex(t, "iv"), v.Hex(t, "plaintext"), v.Hex(t, "ciphertext")})
	mmt := testvec.Load(t, filepath.Join("testdata", "vectors", "nist-cavp-tcbcmmt3.txt"))
	recs := mmt.Records("count")
	if len(recs) != 20 {
		t.Fatalf("TCBCMMT3 has %d records, want 20", len(recs))
	}
	for _, r := range recs {
		cs = append(cs, cbcCase{"tcbcmmt3-" + r.Get(t, "count"), lookup(t, r.Get(t, "transform")),
			r.Hex(t, "key"), r.Hex(t, "iv"), r.Hex(t, "plaintext"), r.Hex(t, "ciphertext")})
	}
	return cs
}

func TestCBCVectors(t *testing.T) {
	d := newDriver(t)
	for _, c := range cbcCases(t) {
		t.Run(c.name, func(t *testing.T) {
			out := newSession(t, d, c.tr, ipsec.Outbound, c.key, nil)
			in := newSession(t, d, c.tr, ipsec.Inbound, c.key, nil)
			for _, mode := range modes {
				for _, dir := range []struct {
					s        driver.Session
					from, to []byte
				}{{out, c.plain, c.enc}, {in, c.enc, c.plain}} {
					b := newBuffer(dir.from)
					op := &driver.Op{Session: dir.s, Buf: b, CipherLen: len(dir.from), IVLen: uint8(len(c.iv))}
					copy(op.IV[:], c.iv)
					if st := exec(t, d, mode, op); st != driver.OK {
						t.Fatalf("%s: %v", mode, st)
					}
					if got := b.Bytes(); !bytes.Equal(got, dir.to) {
						t.Fatalf("%s: got %x, want %x", mode, got, dir.to)
					}
				}
			}
		})
	}
}

// TestCBCBadArgs checks that a CBC op whose length is not whole blocks, or
// whose IV has the wrong length, is refused without touching the data.
func TestCBCBadArgs(t *testing.T) {
	d := newDriver(t)
	tr := lookup(t, "esp-3des")
	s := newSession(t, d, tr, ipsec.Outbound, make([]byte, 24), nil)
	for _, c := range []struct {
		n, iv int
	}{{7, 8}, {9, 8}, {8, 16}, {8, 0}} {
		p := bytes.Repeat([]byte{0xa5}, 16)
		b := newBuffer(p)
		op := &driver.Op{Session: s, Buf: b, CipherLen: c.n, IVLen: uint8(c.iv)}
		if st := exec(t, d, "process", op); st != driver.InvalidArgs {
			t.Errorf("%d bytes, %d-byte IV: %v, want invalid-args", c.n, c.iv, st)
		}
		if !bytes.Equal(b.Bytes(), p) {
			t.Errorf("%d bytes, %d-byte IV: data changed", c.n, c.iv)
		}
	}
}

func TestChaCha20Poly1305Vector(t *testing.T) {
	d := newDriver(t)
	v := testvec.Load(t, filepath.Join("testdata", "vectors", "rfc8439-2.8.2.txt"))
	tr := lookup(t, v.Get(t, "transform"))
	key := append(v.Hex(t, "key"), v.Hex(t, "salt")...)
	iv, aad := v.Hex(t, "iv"), v.Hex(t, "aad")
	pt, ct, tag := v.Hex(t, "plaintext"), v.Hex(t, "ciphertext"), v.Hex(t, "tag")
	if len(tag) != tr.ICVLen() || len(aad) != 12 || len(iv) != tr.IVLen() {
		t.Fatalf("vector does not fit %s", tr)
	}
	out := newSession(t, d, tr, ipsec.Outbound, key, nil)
	in := newSession(t, d, tr, ipsec.Inbound, key, nil)
	n := len(pt)
	mkop := func(s driver.Session, p []byte) *driver.Op {
		op := &driver.Op{Session: s, Buf: newBuffer(p), CipherLen: n, DigestOff: n, IVLen: 8, AADLen: uint8(len(aad))}
		copy(op.IV[:], iv)
		copy(op.AAD[:], aad)
		return op
	}
	sealed := append(append([]byte(nil), ct...), tag...)
	for _, mode := range modes {
		op := mkop(out, pt)
		if st := exec(t, d, mode, op); st != driver.OK {
			t.Fatalf("%s: seal: %v", mode, st)
		}
		if got := op.Buf.Mem[:n+len(tag)]; !bytes.Equal(got, sealed) {
			t.Fatalf("%s: sealed %x, want %x", mode, got, sealed)
		}
		op = mkop(in, sealed)
		if st := exec(t, d, mode, op); st != driver.OK {
			t.Fatalf("%s: open: %v", mode, st)
		}
		if got := op.Buf.Mem[:n]; !bytes.Equal(got, pt) {
			t.Fatalf("%s: opened %x", mode, got)
		}
		// One flipped bit anywhere the tag covers must fail.
		for _, where := range []string{"ciphertext", "tag", "aad", "iv"} {
			op = mkop(in, sealed)
			switch where {
			case "ciphertext":
				op.Buf.Mem[n/3] ^= 0x80
			case "tag":
				op.Buf.Mem[n+len(tag)-1] ^= 0x01
			case "aad":
				op.AAD[5] ^= 0x01
			case "iv":
				op.IV[7] ^= 0x01
			}
			if st := exec(t, d, mode, op); st != driver.AuthFailed {
				t.Errorf("%s: flipped %s: %v, want auth-failed", mode, where, st)
			}
		}
	}
}

// TestVectorSources checks that every vector file names its source on line
// 1, as the style guide asks.
func TestVectorSources(t *testing.T) {
	for _, v := range vectors(t, "*.txt") {
		if !strings.ContainsAny(v.Source, "0123456789") {
			t.Errorf("%s: line 1 %q names no document section or number", v.Path, v.Source)
		}
	}
}
