//go:build dpdk && cgo

package dpdk

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/transform"
)

func mustTransform(t testing.TB, name string) transform.Transform {
	t.Helper()
	tr, ok := transform.Lookup(name)
	if !ok {
		t.Fatalf("no transform %s", name)
	}
	return tr
}

// TestSessionCloseWipesKeys checks that after Close no copy of the raw
// cipher key is left in the device session's memory. AES-128's first round
// key is the key itself, so the bytes are there while the session lives.
func TestSessionCloseWipesKeys(t *testing.T) {
	for _, name := range []string{"esp-aes128-gcm16", "esp-aes128-hmac-sha", "esp-chacha20-poly1305"} {
		t.Run(name, func(t *testing.T) {
			d := openT(t, 1, nil)
			tr := mustTransform(t, name)
			ck, ak := keys(rand.New(rand.NewPCG(7, 7)), tr)
			raw := ck[:tr.CipherKeyLen()-tr.SaltLen()]
			s, err := d.NewSession(driver.SessionConfig{Transform: tr, CipherKey: ck, AuthKey: ak})
			if err != nil {
				t.Fatal(err)
			}
			ds := s.(*session)
			mem := ds.memory()
			if !bytes.Contains(mem, raw) {
				t.Fatalf("the key is not in the live session's %d bytes: this test cannot see it", len(mem))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(mem, raw) {
				t.Fatal("the key is still in the session's memory after Close")
			}
			if ds.salt != [4]byte{} {
				t.Fatal("salt not zeroed")
			}
			if len(d.sessions) != 0 {
				t.Fatalf("%d sessions still tracked", len(d.sessions))
			}
		})
	}
}

// TestBadOps: ops the driver cannot run complete with a status, never
// reach a device, and never crash it.
func TestBadOps(t *testing.T) {
	d := openT(t, 1, nil)
	fb := fallback.New(1)
	defer fb.Close()
	tr := mustTransform(t, "esp-aes128-hmac-sha")
	ck, ak := keys(rand.New(rand.NewPCG(1, 1)), tr)
	sc := driver.SessionConfig{Transform: tr, CipherKey: ck, AuthKey: ak}
	s, err := d.NewSession(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	closed, _ := d.NewSession(sc)
	closed.Close()
	sc.Action = driver.CPUCrypto
	foreign, _ := fb.NewSession(sc)
	defer foreign.Close()

	good := func() *driver.Op {
		b := &driver.Buffer{Mem: make([]byte, bufSize), Off: 128}
		op, _ := espLayout{t: tr, spi: 1, seq: 1}.build(b, make([]byte, 100), make([]byte, 16))
		op.Session = s
		return &op
	}
	cases := []struct {
		name string
		mod  func(*driver.Op)
		want driver.Status
	}{
		{"good", func(*driver.Op) {}, driver.OK},
		{"closed session", func(op *driver.Op) { op.Session = closed }, driver.InvalidSession},
		{"foreign session", func(op *driver.Op) { op.Session = foreign }, driver.InvalidSession},
		{"nil session", func(op *driver.Op) { op.Session = nil }, driver.InvalidSession},
		{"nil buffer", func(op *driver.Op) { op.Buf = nil }, driver.InvalidArgs},
		{"cipher past the buffer", func(op *driver.Op) { op.CipherLen = bufSize }, driver.InvalidArgs},
		{"negative offset", func(op *driver.Op) { op.AuthOff = -8 }, driver.InvalidArgs},
		{"digest past the buffer", func(op *driver.Op) { op.DigestOff = bufSize - 128 - 4 }, driver.InvalidArgs},
		{"partial block", func(op *driver.Op) { op.CipherLen -= 3 }, driver.InvalidArgs},
		{"short IV", func(op *driver.Op) { op.IVLen = 8 }, driver.InvalidArgs},
		{"offset past the memory", func(op *driver.Op) { op.Buf.Off = bufSize + 1 }, driver.InvalidArgs},
		{"overflowing length", func(op *driver.Op) { op.AuthLen = int(^uint(0) >> 1) }, driver.InvalidArgs},
		{"forged handle", func(op *driver.Op) { op.Buf.Handle = 0x1000 }, driver.OK},
	}
	var ops []*driver.Op
	for _, c := range cases {
		op := good()
		c.mod(op)
		ops = append(ops, op)
	}
	run(t, d.QueuePair(0), ops)
	for i, c := range cases {
		if ops[i].Status != c.want {
			t.Errorf("%s: status %v, want %v", c.name, ops[i].Status, c.want)
		}
	}
}

// TestCloseInFlight closes a session while its ops are queued: they still
// complete, and the device session is freed only after the last one.
func TestCloseInFlight(t *testing.T) {
	d := openT(t, 1, nil)
	tr := mustTransform(t, "esp-aes128-gcm16")
	ck, ak := keys(rand.New(rand.NewPCG(2, 2)), tr)
	s, err := d.NewSession(driver.SessionConfig{Transform: tr, CipherKey: ck, AuthKey: ak})
	if err != nil {
		t.Fatal(err)
	}
	qp := d.QueuePair(0)
	ops := make([]*driver.Op, 32)
	for i := range ops {
		b := &driver.Buffer{Mem: make([]byte, bufSize), Off: 128}
		op, _ := espLayout{t: tr, spi: 1, seq: uint64(i + 1)}.build(b, make([]byte, 500), make([]byte, 16))
		op.Session = s
		ops[i] = &op
	}
	if n := qp.Enqueue(ops); n != len(ops) {
		t.Fatalf("enqueued %d of %d", n, len(ops))
	}
	s.Close()
	if len(d.sessions) != 1 {
		t.Fatal("the device session was freed with ops in flight")
	}
	late := *ops[0]
	run(t, qp, []*driver.Op{&late})
	if late.Status != driver.InvalidSession {
		t.Fatalf("op after Close: %v, want invalid-session", late.Status)
	}
	out := make([]*driver.Op, len(ops))
	got := 0
	for i := 0; got < len(ops) && i < 1e6; i++ {
		got += qp.Dequeue(out[got:])
	}
	for _, op := range ops {
		if op.Status != driver.OK {
			t.Fatalf("in-flight op: %v", op.Status)
		}
	}
	if len(d.sessions) != 0 {
		t.Fatal("the device session outlived its last op")
	}
}

// TestClosedDriver: a closed driver refuses sessions and buffers, and ops
// on its sessions fail cleanly.
func TestClosedDriver(t *testing.T) {
	d, err := Open(driver.Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	tr := mustTransform(t, "esp-aes256-gcm16")
	ck, ak := keys(rand.New(rand.NewPCG(3, 3)), tr)
	sc := driver.SessionConfig{Transform: tr, CipherKey: ck, AuthKey: ak}
	s, err := d.NewSession(sc)
	if err != nil {
		t.Fatal(err)
	}
	qp := d.QueuePair(0)
	events := d.Events()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-events; ok {
		t.Fatal("Events not closed")
	}
	if _, err := d.NewSession(sc); !errors.Is(err, driver.ErrClosed) {
		t.Fatalf("NewSession on a closed driver: %v", err)
	}
	if n := d.AllocBuffers(make([]*driver.Buffer, 4)); n != 0 {
		t.Fatalf("AllocBuffers on a closed driver: %d", n)
	}
	b := &driver.Buffer{Mem: make([]byte, bufSize), Off: 128}
	op, _ := espLayout{t: tr, spi: 1, seq: 1}.build(b, make([]byte, 10), make([]byte, 16))
	op.Session = s
	run(t, qp, []*driver.Op{&op})
	if op.Status != driver.InvalidSession {
		t.Fatalf("op on a closed driver: %v", op.Status)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// The devices are free again.
	d2 := openT(t, 1, nil)
	if _, err := d2.NewSession(sc); err != nil {
		t.Fatal(err)
	}
}
