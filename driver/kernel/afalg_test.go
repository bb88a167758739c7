package kernel

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// openAFALG opens the driver, or skips with the probe's reason.
func openAFALG(t *testing.T) *Driver {
	t.Helper()
	st, algs := probeAFALG()
	if !st.Present {
		t.Skipf("probe: AF_ALG %s", st)
	}
	d := New(2, algs)
	t.Cleanup(func() { d.Close() })
	return d
}

// complete runs ops through queue pair 0 and waits for every completion.
func complete(t *testing.T, d *Driver, ops []*driver.Op) {
	t.Helper()
	q := d.QueuePair(0)
	if n := q.Enqueue(ops); n != len(ops) {
		t.Fatalf("enqueued %d of %d", n, len(ops))
	}
	got := make([]*driver.Op, len(ops))
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < len(ops); {
		n += q.Dequeue(got[n:])
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d ops completed", n, len(ops))
		}
		time.Sleep(time.Millisecond)
	}
}

// espOp lays out a packet as package offload does (framing.go): the ESP
// header, the IV, the payload, for a chain with ESN the high sequence bits,
// then the ICV, with 16 bytes of tailroom; AH ops authenticate the whole
// packet. It returns a buffer and an op on it, without a session.
func espOp(tr transform.Transform, payload []byte, seq uint64, esn bool) *driver.Op {
	ivLen, icv := tr.IVLen(), tr.ICVLen()
	op := &driver.Op{IVLen: uint8(ivLen)}
	rand.Read(op.IV[:ivLen])
	hdr := 8
	if tr.Protocol == transform.AH {
		hdr = 0
	}
	n := hdr + ivLen + len(payload)
	extra := 0
	if esn && !tr.Cipher.AEAD() && tr.Authenticates() {
		extra = 4
	}
	mem := make([]byte, n+extra+icv+16)
	binary.BigEndian.PutUint32(mem[0:], 0x1234)
	binary.BigEndian.PutUint32(mem[4:], uint32(seq))
	copy(mem[hdr:], op.IV[:ivLen])
	copy(mem[hdr+ivLen:], payload)
	op.Buf = &driver.Buffer{Mem: mem, Len: n + extra + icv}
	if tr.Encrypts() {
		op.CipherOff, op.CipherLen = hdr+ivLen, len(payload)
	}
	switch {
	case tr.Cipher.AEAD():
		binary.BigEndian.PutUint32(op.AAD[0:], 0x1234)
		op.AADLen = 8
		if esn {
			binary.BigEndian.PutUint64(op.AAD[4:], seq)
			op.AADLen = 12
		} else {
			binary.BigEndian.PutUint32(op.AAD[4:], uint32(seq))
		}
		op.DigestOff = n
	case tr.Authenticates():
		if extra > 0 {
			binary.BigEndian.PutUint32(mem[n:], uint32(seq>>32))
		}
		op.AuthLen, op.DigestOff = n+extra, n+extra
	}
	return op
}

func cloneOp(op *driver.Op, s driver.Session) *driver.Op {
	c := *op
	b := *op.Buf
	b.Mem = append([]byte(nil), op.Buf.Mem...)
	c.Buf, c.Session = &b, s
	return &c
}

// TestAgainstFallback runs every transform the kernel offers through AF_ALG
// and through the software engine with the same keys and IVs: the output
// must be byte-identical, each side must open the other's packets, and a
// one-byte tamper in the header, AAD, IV, payload or ICV must fail.
func TestAgainstFallback(t *testing.T) {
	d := openAFALG(t)
	fb := fallback.New(1)
	defer fb.Close()
	for _, c := range d.Info().Capabilities {
		tr := c.Transform
		t.Run(tr.Name(), func(t *testing.T) {
			ck, ak := randKey(tr.CipherKeyLen()), randKey(tr.AuthKeyLen())
			mk := func(drv driver.Driver, dir ipsec.Direction, a driver.Action) driver.Session {
				s, err := drv.NewSession(driver.SessionConfig{Action: a, Transform: tr, Direction: dir, SPI: 0x1234, CipherKey: ck, AuthKey: ak})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			kOut, kIn := mk(d, ipsec.Outbound, driver.LookasideCrypto), mk(d, ipsec.Inbound, driver.LookasideCrypto)
			fOut, fIn := mk(fb, ipsec.Outbound, driver.CPUCrypto), mk(fb, ipsec.Inbound, driver.CPUCrypto)
			for _, size := range []int{16, 64, 1408} {
				for _, esn := range []bool{false, true} {
					payload := make([]byte, size)
					rand.Read(payload)
					seq := uint64(0x00000001_00000007)
					base := espOp(tr, payload, seq, esn)
					k, f := cloneOp(base, kOut), cloneOp(base, fOut)
					complete(t, d, []*driver.Op{k})
					fb.Process([]*driver.Op{f})
					if k.Status != driver.OK || f.Status != driver.OK {
						t.Fatalf("%d/%v: outbound kernel %s, software %s", size, esn, k.Status, f.Status)
					}
					// The packets must be equal; the tailroom may differ (the
					// software engine spills 16-byte GCM tags into it).
					if !bytes.Equal(k.Buf.Bytes(), f.Buf.Bytes()) {
						t.Fatalf("%d/%v: kernel and software output differ:\n% x\n% x", size, esn, k.Buf.Bytes(), f.Buf.Bytes())
					}
					if tr.Encrypts() && bytes.Equal(k.Buf.Mem[k.CipherOff:k.CipherOff+size], payload) {
						t.Fatalf("%d/%v: payload not encrypted", size, esn)
					}
					in := cloneOp(k, kIn)
					complete(t, d, []*driver.Op{in})
					if in.Status != driver.OK || !bytes.Equal(in.Buf.Mem[in.CipherOff:in.CipherOff+size], payload) && tr.Encrypts() {
						t.Fatalf("%d/%v: kernel inbound %s or wrong plaintext", size, esn, in.Status)
					}
					fi := cloneOp(k, fIn)
					fb.Process([]*driver.Op{fi})
					if fi.Status != driver.OK || !bytes.Equal(fi.Buf.Bytes(), in.Buf.Bytes()) {
						t.Fatalf("%d/%v: software inbound of the kernel's packet: %s, or output differs", size, esn, fi.Status)
					}
					if !tr.Authenticates() {
						continue
					}
					for _, tamper := range tamperings(k, tr) {
						op := cloneOp(k, kIn)
						tamper.fn(op)
						complete(t, d, []*driver.Op{op})
						if op.Status != driver.AuthFailed {
							t.Errorf("%d/%v: tampered %s: %s, want auth-failed", size, esn, tamper.name, op.Status)
						}
					}
				}
			}
		})
	}
}

type tampering struct {
	name string
	fn   func(*driver.Op)
}

// tamperings flips one byte of each region the ICV covers.
func tamperings(op *driver.Op, tr transform.Transform) []tampering {
	flip := func(off int) func(*driver.Op) { return func(o *driver.Op) { o.Buf.Mem[off] ^= 0x01 } }
	ts := []tampering{{"icv", flip(op.DigestOff + tr.ICVLen() - 1)}}
	if tr.Cipher.AEAD() {
		return append(ts,
			tampering{"aad", func(o *driver.Op) { o.AAD[o.AADLen-1] ^= 0x80 }},
			tampering{"iv", func(o *driver.Op) { o.IV[0] ^= 0x01 }},
			tampering{"payload", flip(op.CipherOff)})
	}
	ts = append(ts, tampering{"header", flip(op.AuthOff)}, tampering{"last covered byte", flip(op.AuthOff + op.AuthLen - 1)})
	if tr.Encrypts() {
		ts = append(ts, tampering{"iv", flip(op.CipherOff - 1)}, tampering{"payload", flip(op.CipherOff)})
	}
	return ts
}

// TestBadOps checks that malformed ops complete with a status, never a
// panic or a system call outside the buffer, and that a closed session's
// ops complete with InvalidSession.
func TestBadOps(t *testing.T) {
	d := openAFALG(t)
	for _, c := range d.Info().Capabilities {
		tr := c.Transform
		s, err := d.NewSession(driver.SessionConfig{Action: driver.LookasideCrypto, Transform: tr, Direction: ipsec.Inbound,
			CipherKey: randKey(tr.CipherKeyLen()), AuthKey: randKey(tr.AuthKeyLen())})
		if err != nil {
			t.Fatalf("%s: %v", tr, err)
		}
		good := espOp(tr, make([]byte, 32), 1, false)
		// Each mutation breaks a range the transform uses.
		muts := []func(*driver.Op){func(o *driver.Op) { o.Buf = nil }}
		if tr.Encrypts() {
			muts = append(muts, func(o *driver.Op) { o.CipherLen += 4096 }, func(o *driver.Op) { o.IVLen = 3 })
		}
		if tr.Authenticates() {
			muts = append(muts, func(o *driver.Op) { o.DigestOff = len(o.Buf.Mem) })
		}
		if tr.Authenticates() && !tr.Cipher.AEAD() {
			muts = append(muts, func(o *driver.Op) { o.AuthLen = -1 })
		}
		var bad []*driver.Op
		for _, mut := range muts {
			op := cloneOp(good, s)
			mut(op)
			bad = append(bad, op)
		}
		complete(t, d, bad)
		for i, op := range bad {
			if op.Status == driver.OK || op.Status == driver.NotProcessed {
				t.Errorf("%s: bad op %d: %s", tr, i, op.Status)
			}
		}
		s.Close()
		op := cloneOp(good, s)
		complete(t, d, []*driver.Op{op})
		if op.Status != driver.InvalidSession {
			t.Errorf("%s: op on closed session: %s", tr, op.Status)
		}
	}
}

// TestSessionKeys checks key-length checks and that keys never print.
func TestSessionKeys(t *testing.T) {
	d := openAFALG(t)
	tr := d.Info().Capabilities[0].Transform
	key := randKey(tr.CipherKeyLen() + 1)
	_, err := d.NewSession(driver.SessionConfig{Action: driver.LookasideCrypto, Transform: tr, CipherKey: key, AuthKey: randKey(tr.AuthKeyLen())})
	if !errors.Is(err, driver.ErrBadKey) {
		t.Fatalf("wrong key length: %v", err)
	}
	if strings.Contains(err.Error(), string(key)) || strings.Contains(err.Error(), fmt.Sprintf("%x", key)) {
		t.Fatalf("error carries the key: %v", err)
	}
}
