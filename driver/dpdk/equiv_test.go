//go:build dpdk && cgo

package dpdk

import (
	"bytes"
	"hash/fnv"
	"math/rand/v2"
	"testing"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// equivSizes are the inner payload sizes compared: every length from 1 to
// 40 (every remainder modulo the 8- and 16-byte blocks, several times) and a
// spread up to a 9000-byte jumbo frame.
var equivSizes = func() []int {
	var s []int
	for n := 1; n <= 40; n++ {
		s = append(s, n)
	}
	return append(s, 63, 64, 65, 127, 255, 256, 511, 512, 1000, 1419, 1420, 1421, 1500, 2048, 4095, 8191, 8999, 9000)
}()

// bufSize is the Go buffer of a test packet: offload's headroom, the
// largest packet and tailroom.
const bufSize = 128 + driver.MaxPacket + 128

// TestMatchesFallback runs every transform each device supports, in both
// directions, with and without ESN, on Go memory (copied into mbufs) and on
// driver buffers (zero copy), and requires byte-identical results to the
// fallback engine for the same keys, IVs, sequence numbers and op layout.
// Tampered packets must fail the ICV check on both.
func TestMatchesFallback(t *testing.T) {
	fb := fallback.New(1)
	defer fb.Close()
	for _, dev := range DefaultVdevs {
		t.Run(dev, func(t *testing.T) {
			d := openT(t, 1, map[string]string{"devices": dev})
			caps := d.Info().Capabilities
			if len(caps) == 0 {
				t.Fatalf("%s supports no transform", dev)
			}
			t.Logf("%s supports %d transforms", dev, len(caps))
			for _, c := range caps {
				for _, esn := range []bool{false, true} {
					name := c.Transform.Name()
					if esn {
						name += "/esn"
					}
					t.Run(name, func(t *testing.T) { compareTransform(t, d, fb, c.Transform, esn) })
				}
			}
		})
	}
}

func compareTransform(t *testing.T, d *Driver, fb *fallback.Driver, tr transform.Transform, esn bool) {
	h := fnv.New64a()
	h.Write([]byte(tr.Name()))
	r := rand.New(rand.NewPCG(uint64(len(equivSizes)), h.Sum64()))
	ck, ak := keys(r, tr)
	sc := driver.SessionConfig{Action: driver.LookasideCrypto, Transform: tr, SPI: 0x1234, CipherKey: ck, AuthKey: ak, ESN: esn}
	sc.Direction = ipsec.Outbound
	outD, outF := sessionPair(t, d, fb, sc)
	sc.Direction = ipsec.Inbound
	inD, inF := sessionPair(t, d, fb, sc)
	qp := d.QueuePair(0)

	n := len(equivSizes)
	mbufs := make([]*driver.Buffer, n)
	if got := d.AllocBuffers(mbufs); got != n {
		t.Fatalf("AllocBuffers: %d of %d", got, n)
	}
	defer d.FreeBuffers(mbufs)
	type pkt struct {
		payload      []byte
		fb, gm, mb   driver.Op
		ext          int
		fbBuf, gmBuf driver.Buffer
		wire         []byte // the outbound result
	}
	pkts := make([]pkt, n)
	var fbOps, dOps []*driver.Op
	for i, size := range equivSizes {
		p := &pkts[i]
		p.payload = make([]byte, size)
		fill(r, p.payload)
		iv := make([]byte, 16)
		fill(r, iv)
		l := espLayout{t: tr, spi: 0x1234, seq: 1<<32 + uint64(i) + 1, esn: esn}
		if !esn {
			l.seq = uint64(i) + 1
		}
		p.fbBuf = driver.Buffer{Mem: make([]byte, bufSize), Off: 128}
		p.gmBuf = driver.Buffer{Mem: make([]byte, bufSize), Off: 128}
		p.fb, p.ext = l.build(&p.fbBuf, p.payload, iv)
		p.gm, _ = l.build(&p.gmBuf, p.payload, iv)
		p.mb, _ = l.build(mbufs[i], p.payload, iv)
		p.fb.Session, p.gm.Session, p.mb.Session = outF, outD, outD
		fbOps = append(fbOps, &p.fb)
		dOps = append(dOps, &p.gm, &p.mb)
	}
	fb.Process(fbOps)
	run(t, qp, dOps)
	for i := range pkts {
		p := &pkts[i]
		for _, op := range []*driver.Op{&p.fb, &p.gm, &p.mb} {
			if op.Status != driver.OK {
				t.Fatalf("size %d outbound: status %v", equivSizes[i], op.Status)
			}
		}
		want := p.fbBuf.Mem[128 : 128+p.ext]
		if got := p.gmBuf.Mem[128 : 128+p.ext]; !bytes.Equal(got, want) {
			t.Fatalf("size %d outbound on Go memory: dpdk\n%x\nfallback\n%x", equivSizes[i], got, want)
		}
		if got := mbufs[i].Mem[128 : 128+p.ext]; !bytes.Equal(got, want) {
			t.Fatalf("size %d outbound on an mbuf: dpdk\n%x\nfallback\n%x", equivSizes[i], got, want)
		}
		p.wire = bytes.Clone(want)
	}

	// Inbound: the outbound packets, as they are, verified and decrypted;
	// then once more with one byte flipped.
	for _, tamper := range []bool{false, true} {
		if tamper && !tr.Authenticates() {
			continue
		}
		fbOps, dOps = fbOps[:0], dOps[:0]
		flips := make([]int, n)
		for i := range pkts {
			p := &pkts[i]
			if tamper {
				// Anywhere the ICV covers: header, IV, payload or ICV.
				flips[i] = r.IntN(p.ext - 4)
				if tr.Cipher.AEAD() && flips[i] < 8+tr.IVLen() {
					flips[i] = 8 // the SPI is in the AAD, not the ciphertext
				}
			}
			for _, b := range []*driver.Buffer{&p.fbBuf, &p.gmBuf, mbufs[i]} {
				copy(b.Mem[128:128+p.ext], p.wire)
				if tamper {
					b.Mem[128+flips[i]] ^= 0x40
				}
			}
			p.fb.Session, p.gm.Session, p.mb.Session = inF, inD, inD
			if tamper && tr.Cipher.AEAD() && flips[i] == 8 {
				// Flip the sequence number in the AAD instead.
				for _, op := range []*driver.Op{&p.fb, &p.gm, &p.mb} {
					op.AAD[7] ^= 1
				}
				for _, b := range []*driver.Buffer{&p.fbBuf, &p.gmBuf, mbufs[i]} {
					b.Mem[128+8] ^= 0x40
				}
			}
			fbOps = append(fbOps, &p.fb)
			dOps = append(dOps, &p.gm, &p.mb)
		}
		fb.Process(fbOps)
		run(t, qp, dOps)
		for i := range pkts {
			p := &pkts[i]
			if tamper {
				for _, op := range []*driver.Op{&p.fb, &p.gm, &p.mb} {
					if op.Status != driver.AuthFailed {
						t.Fatalf("size %d, byte %d flipped: status %v, want auth-failed", equivSizes[i], flips[i], op.Status)
					}
				}
				continue
			}
			for _, op := range []*driver.Op{&p.fb, &p.gm, &p.mb} {
				if op.Status != driver.OK {
					t.Fatalf("size %d inbound: status %v", equivSizes[i], op.Status)
				}
			}
			pay := 128 + 8 + tr.IVLen()
			if got := p.fbBuf.Mem[pay : pay+len(p.payload)]; !bytes.Equal(got, p.payload) {
				t.Fatalf("size %d: fallback did not restore the payload", equivSizes[i])
			}
			want := p.fbBuf.Mem[128 : 128+p.ext]
			if got := p.gmBuf.Mem[128 : 128+p.ext]; !bytes.Equal(got, want) {
				t.Fatalf("size %d inbound on Go memory differs:\n%x\n%x", equivSizes[i], got, want)
			}
			if got := mbufs[i].Mem[128 : 128+p.ext]; !bytes.Equal(got, want) {
				t.Fatalf("size %d inbound on an mbuf differs:\n%x\n%x", equivSizes[i], got, want)
			}
		}
	}
}
