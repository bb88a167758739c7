//go:build dpdk && cgo

package dpdk

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/ipsec"
)

// fuzzTransforms are the sessions FuzzOpBounds picks from.
var fuzzTransforms = []string{"esp-aes128-gcm16", "esp-aes128-hmac-sha", "esp-3des-hmac-md5", "esp-null-hmac-sha256", "ah-hmac-sha", "esp-chacha20-poly1305", "esp-aes256-gcm8", "esp-aes192"}

// opFields encodes an op's layout the way FuzzOpBounds decodes it.
func opFields(flags byte, op *driver.Op) []byte {
	b := []byte{flags}
	for _, v := range []int{op.Buf.Off, op.Buf.Len, op.CipherOff, op.CipherLen, op.AuthOff, op.AuthLen, op.DigestOff} {
		b = binary.BigEndian.AppendUint16(b, uint16(int16(v)))
	}
	return append(b, op.IVLen, op.AADLen)
}

// FuzzOpBounds gives the driver ops with arbitrary offsets and lengths on
// Go memory and on mbufs. Whatever they are, the op completes with OK,
// AuthFailed or InvalidArgs, and no byte outside the ranges the op names
// changes: the C side never reads or writes outside the buffer.
func FuzzOpBounds(f *testing.F) {
	d := openT(f, 1, map[string]string{"mbufs": "256"})
	r := rand.New(rand.NewPCG(11, 11))
	var sessions []driver.Session
	for i, name := range fuzzTransforms {
		tr := mustTransform(f, name)
		ck, ak := keys(r, tr)
		s, err := d.NewSession(driver.SessionConfig{Transform: tr, CipherKey: ck, AuthKey: ak, Direction: ipsec.Direction(i % 2)})
		if err != nil {
			f.Fatal(err)
		}
		sessions = append(sessions, s)
		b := &driver.Buffer{Mem: make([]byte, bufSize), Off: 128}
		for _, n := range []int{1, 100, 1400} {
			op, _ := espLayout{t: tr, spi: 1, seq: 1}.build(b, make([]byte, n), make([]byte, 16))
			f.Add(opFields(byte(i), &op))
			f.Add(opFields(byte(i)|8, &op))
		}
	}
	mbufs := make([]*driver.Buffer, 1)
	if d.AllocBuffers(mbufs) != 1 {
		f.Fatal("no mbuf")
	}
	mb := mbufs[0]
	gm := &driver.Buffer{Mem: make([]byte, bufSize)}
	pattern := make([]byte, len(mb.Mem))
	for i := range pattern {
		pattern[i] = byte(i*7 + 3)
	}
	qp := d.QueuePair(0)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 17 {
			return
		}
		flags := data[0]
		field := func(i int) int { return int(int16(binary.BigEndian.Uint16(data[1+2*i:]))) }
		buf := gm
		if flags&8 != 0 {
			buf = mb
		}
		copy(buf.Mem, pattern)
		buf.Off, buf.Len = int(uint16(field(0)))%(len(buf.Mem)+64), field(1)
		op := driver.Op{Session: sessions[int(flags&7)%len(sessions)], Buf: buf,
			CipherOff: field(2), CipherLen: field(3), AuthOff: field(4), AuthLen: field(5), DigestOff: field(6),
			IVLen: data[15], AADLen: data[16]}
		run(t, qp, []*driver.Op{&op})
		switch op.Status {
		case driver.OK, driver.AuthFailed, driver.InvalidArgs:
		default:
			t.Fatalf("status %v", op.Status)
		}
		if op.Status == driver.InvalidArgs {
			if !bytes.Equal(buf.Mem, pattern[:len(buf.Mem)]) {
				t.Fatal("an invalid op changed the buffer")
			}
			return
		}
		// A valid op touches only [Off+lo, Off+hi): its regions.
		lo, hi := buf.Len, buf.Len
		for _, rg := range [][2]int{{op.CipherOff, op.CipherLen}, {op.AuthOff, op.AuthLen}, {op.DigestOff, 32}} {
			if rg[1] > 0 {
				lo, hi = min(lo, rg[0]), max(hi, rg[0]+rg[1])
			}
		}
		lo = max(lo, 0)
		if !bytes.Equal(buf.Mem[:buf.Off+lo], pattern[:buf.Off+lo]) {
			t.Fatal("bytes before the op's ranges changed")
		}
		if end := min(buf.Off+hi, len(buf.Mem)); !bytes.Equal(buf.Mem[end:], pattern[end:len(buf.Mem)]) {
			t.Fatal("bytes after the op's ranges changed")
		}
	})
}
