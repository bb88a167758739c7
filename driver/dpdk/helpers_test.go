//go:build dpdk && cgo

package dpdk

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// openT opens the driver for one test and closes it at the end.
func openT(t testing.TB, workers int, params map[string]string) *Driver {
	t.Helper()
	d, err := Open(driver.Config{Workers: workers, Params: params})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// sessionPair makes the same keys into a session of each driver.
func sessionPair(t testing.TB, a, b driver.Driver, c driver.SessionConfig) (driver.Session, driver.Session) {
	t.Helper()
	sa, err := a.NewSession(c)
	if err != nil {
		t.Fatalf("%s: %v", a.Name(), err)
	}
	c.Action = driver.CPUCrypto
	sb, err := b.NewSession(c)
	if err != nil {
		t.Fatalf("%s: %v", b.Name(), err)
	}
	t.Cleanup(func() { _ = sa.Close(); _ = sb.Close() })
	return sa, sb
}

// keys returns random keys for t.
func keys(r *rand.Rand, t transform.Transform) (ipsec.Key, ipsec.Key) {
	ck := make(ipsec.Key, t.CipherKeyLen())
	ak := make(ipsec.Key, t.AuthKeyLen())
	fill(r, ck)
	fill(r, ak)
	return ck, ak
}

func fill(r *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// espLayout lays out an ESP packet (RFC 4303 §2) the way offload's framing
// does: header, explicit IV, payload, padding, pad length and next header,
// then the ICV, with the ESN high bits before the ICV for cipher+HMAC
// transforms (RFC 4303 §2.2.1). The packet is written at buf.Off and the op
// describes it; ext is the extent of bytes the op may touch.
type espLayout struct {
	t   transform.Transform
	spi uint32
	seq uint64
	esn bool
}

func (l espLayout) build(buf *driver.Buffer, payload, iv []byte) (op driver.Op, ext int) {
	t := l.t
	bs := t.BlockSize()
	pad := (bs - (len(payload)+2)%bs) % bs
	payLen := len(payload) + pad + 2
	ivLen := t.IVLen()
	p := buf.Mem[buf.Off:]
	binary.BigEndian.PutUint32(p[0:], l.spi)
	binary.BigEndian.PutUint32(p[4:], uint32(l.seq))
	copy(p[8:], iv[:ivLen])
	pay := 8 + ivLen
	copy(p[pay:], payload)
	for i := range pad {
		p[pay+len(payload)+i] = byte(i + 1)
	}
	p[pay+payLen-2] = byte(pad)
	p[pay+payLen-1] = 4
	buf.Len = pay + payLen + t.ICVLen()
	op = driver.Op{Buf: buf, CipherOff: pay, IVLen: uint8(ivLen)}
	copy(op.IV[:], iv[:ivLen])
	if t.Encrypts() {
		op.CipherLen = payLen
	}
	switch {
	case t.Cipher.AEAD():
		binary.BigEndian.PutUint32(op.AAD[0:], l.spi)
		op.AADLen = 8
		if l.esn {
			binary.BigEndian.PutUint64(op.AAD[4:], l.seq)
			op.AADLen = 12
		} else {
			binary.BigEndian.PutUint32(op.AAD[4:], uint32(l.seq))
		}
		op.DigestOff = pay + payLen
	case t.Authenticates():
		op.AuthLen = pay + payLen
		if l.esn {
			binary.BigEndian.PutUint32(p[op.AuthLen:], uint32(l.seq>>32))
			op.AuthLen += 4
		}
		op.DigestOff = op.AuthLen
	}
	return op, max(buf.Len, op.DigestOff+t.ICVLen())
}

// run pushes ops through a queue pair and waits until all are back. It
// fails the test if the device keeps them longer than a generous bound
// (a hang guard, not a speed check).
func run(t testing.TB, qp driver.QueuePair, ops []*driver.Op) {
	t.Helper()
	out := make([]*driver.Op, len(ops))
	sent, got := 0, 0
	deadline := time.Now().Add(10 * time.Second)
	for got < len(ops) {
		sent += qp.Enqueue(ops[sent:])
		got += qp.Dequeue(out[got:])
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d ops sent, %d back after 10 s", sent, len(ops), got)
		}
	}
	for _, op := range out[:got] {
		found := false
		for _, o := range ops {
			found = found || o == op
		}
		if !found {
			t.Fatalf("dequeued an op that was not enqueued")
		}
	}
}
