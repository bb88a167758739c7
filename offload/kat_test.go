package offload_test

// Known-answer tests of whole ESP packets: RFC 3602 §4 cases #5-#8
// (AES-CBC), draft-mcgrew-gcm-test-01 §4 (AES-GCM, RFC 4106) and RFC 7634
// Appendix A (ChaCha20-Poly1305). Each vector packet must decapsulate to its
// inner packet, and encapsulating the inner packet with the vector's IV and
// sequence number must give the vector's ESP bytes exactly.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testvec"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// espKAT is one ESP packet vector.
type espKAT struct {
	name      string
	tr        transform.Transform
	mode      ipsec.Mode
	spi       uint32
	seq       uint64
	esn       bool
	cipherKey []byte
	iv        []byte
	inner     []byte // what Encap takes and Decap gives back
	outer     []byte // the outer IPv4 header of the vector's packet
	esp       []byte // SPI through ICV
	// exactOuter: the outer header must come out byte for byte. In
	// transport mode it is the inner packet's own header; in tunnel mode
	// the engine picks its own identification (see checkOuter).
	exactOuter bool
}

func loadVectors(t testing.TB, pattern string) []*testvec.Vector {
	t.Helper()
	return testvec.Glob(t, filepath.Join("testdata", "vectors", pattern))
}

func mustTransform(t testing.TB, name string) transform.Transform {
	t.Helper()
	tr, ok := transform.Lookup(name)
	if !ok {
		t.Fatalf("transform %q is not in the table", name)
	}
	return tr
}

func modeOf(t testing.TB, v *testvec.Vector) ipsec.Mode {
	switch m := v.Get(t, "mode"); m {
	case "tunnel":
		return ipsec.Tunnel
	case "transport":
		return ipsec.Transport
	default:
		t.Fatalf("%s: mode %q", v.Path, m)
	}
	return 0
}

// ipv4 returns a 20-byte IPv4 header.
func ipv4(src, dst string, proto uint8, id uint16, totalLen int) []byte {
	h := make([]byte, header.IPv4MinimumSize)
	header.IPv4(h).Encode(&header.IPv4Fields{
		TotalLength: uint16(totalLen), ID: id, TTL: header.DefaultTTL, Protocol: proto,
		Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
	})
	return h
}

func rfc3602Vectors(t testing.TB) []espKAT {
	var ks []espKAT
	for _, v := range loadVectors(t, "rfc3602-case*.txt") {
		k := espKAT{
			name: v.Name(), tr: mustTransform(t, v.Get(t, "transform")), mode: modeOf(t, v),
			spi: uint32(v.Uint(t, "spi", true)), seq: v.Uint(t, "seq", true),
			cipherKey: v.Hex(t, "key"), iv: v.Hex(t, "iv"),
			inner: v.Hex(t, "inner"), outer: v.Hex(t, "outer-ip"), esp: v.Hex(t, "esp"),
		}
		k.exactOuter = k.mode == ipsec.Transport
		// RFC 3602's packets carry no ICV: AES-CBC without integrity.
		if k.tr.Cipher != transform.CipherAESCBC || k.tr.Authenticates() {
			t.Fatalf("%s: %s is not AES-CBC without integrity", v.Path, k.tr)
		}
		ks = append(ks, k)
	}
	if len(ks) != 4 {
		t.Fatalf("%d RFC 3602 cases, want #5 to #8", len(ks))
	}
	return ks
}

// gcmDoc and gcmPeer are the transport-mode endpoints the draft's packets
// are framed with; the draft gives ESP packets without IP headers.
const gcmDoc, gcmPeer = "192.0.2.1", "192.0.2.2"

// mcgrewVectors returns the draft's packets the transform table supports.
// Their trailers name next header 1 with a bare payload: transport mode.
func mcgrewVectors(t testing.TB) (ks []espKAT, spiZero []*testvec.Vector) {
	for _, v := range loadVectors(t, "draft-mcgrew-gcm-test-01-*.txt") {
		esn := v.Get(t, "esn") == "yes"
		spi, seq := uint32(v.Uint(t, "spi", true)), v.Uint(t, "seq", true)
		iv, pt := v.Hex(t, "iv"), v.Hex(t, "plaintext")
		ct := append(v.Hex(t, "ciphertext"), v.Hex(t, "tag")...)
		// The vector's own fields must agree with RFC 4106 §5's AAD and
		// RFC 4303's packet layout, or the test would prove nothing.
		var aad, esp []byte
		aad = binary.BigEndian.AppendUint32(aad, spi)
		if esn {
			aad = binary.BigEndian.AppendUint64(aad, seq)
		} else {
			aad = binary.BigEndian.AppendUint32(aad, uint32(seq))
		}
		esp = binary.BigEndian.AppendUint32(esp, spi)
		esp = binary.BigEndian.AppendUint32(esp, uint32(seq))
		esp = append(append(esp, iv...), ct...)
		if !bytes.Equal(aad, v.Hex(t, "aad")) || !bytes.Equal(esp, v.Hex(t, "esp")) {
			t.Fatalf("%s: aad or esp field disagrees with spi, seq, iv and ciphertext", v.Path)
		}
		if spi < 256 {
			spiZero = append(spiZero, v)
			continue
		}
		padLen, nh := int(pt[len(pt)-2]), pt[len(pt)-1]
		payload := pt[:len(pt)-2-padLen]
		inner := append(ipv4(gcmDoc, gcmPeer, nh, 0x5247, header.IPv4MinimumSize+len(payload)), payload...)
		ks = append(ks, espKAT{
			name: v.Name(), tr: mustTransform(t, v.Get(t, "transform")), mode: ipsec.Transport,
			spi: spi, seq: seq, esn: esn,
			cipherKey: append(v.Hex(t, "key"), v.Hex(t, "salt")...), iv: iv,
			inner: inner, esp: esp, exactOuter: true,
			outer: ipv4(gcmDoc, gcmPeer, header.ProtoESP, 0x5247, header.IPv4MinimumSize+len(esp)),
		})
	}
	return ks, spiZero
}

func rfc7634Vector(t testing.TB) espKAT {
	v := testvec.Load(t, filepath.Join("testdata", "vectors", "rfc7634-appendix-a.txt"))
	k := espKAT{
		name: v.Name(), tr: mustTransform(t, v.Get(t, "transform")), mode: modeOf(t, v),
		spi: uint32(v.Uint(t, "spi", true)), seq: v.Uint(t, "seq", true),
		cipherKey: append(v.Hex(t, "key"), v.Hex(t, "salt")...), iv: v.Hex(t, "iv"),
		inner: v.Hex(t, "inner"), esp: v.Hex(t, "esp"),
	}
	// The example has no outer header; any tunnel endpoints will do.
	k.outer = ipv4("203.0.113.1", "203.0.113.2", header.ProtoESP, 1, header.IPv4MinimumSize+len(k.esp))
	return k
}

func allESPVectors(t testing.TB) []espKAT {
	ks := rfc3602Vectors(t)
	gcm, _ := mcgrewVectors(t)
	if len(gcm) != 14 {
		t.Fatalf("%d draft-mcgrew-gcm-test-01 packets, want 14", len(gcm))
	}
	ks = append(ks, gcm...)
	return append(ks, rfc7634Vector(t))
}

func newEngine(t testing.TB) *offload.Engine {
	t.Helper()
	fb := fallback.New(1)
	e, err := offload.New(offload.Config{Fallback: fb})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		_ = fb.Close()
	})
	return e
}

func (k *espKAT) addSA(t testing.TB, e *offload.Engine, dir ipsec.Direction) *offload.SA {
	t.Helper()
	h := header.IPv4(k.outer)
	sa, err := e.AddSA(offload.SAConfig{
		SPI: k.spi, Transform: k.tr, Direction: dir, Mode: k.mode,
		Src: h.Src(), Dst: h.Dst(), CipherKey: k.cipherKey, ESN: k.esn,
		ReplayWindow: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

func newPacket(b []byte) *offload.Packet {
	pk := offload.NewPacket()
	pk.Reset(len(b))
	copy(pk.Buf.Bytes(), b)
	return pk
}

func TestESPVectorsDecap(t *testing.T) {
	for _, k := range allESPVectors(t) {
		t.Run(k.name, func(t *testing.T) {
			e := newEngine(t)
			sa := k.addSA(t, e, ipsec.Inbound)
			if k.esn {
				// The receiver infers the high 32 bits from its window
				// (RFC 4303 Appendix A2.2): put the window just below.
				offload.SetReplayTop(sa, k.seq-1)
			}
			p := e.NewProcessor()
			wire := append(append([]byte(nil), k.outer...), k.esp...)
			decap := func(b []byte) *offload.Packet {
				pk := newPacket(b)
				p.Decap([]*offload.Packet{pk})
				return pk
			}
			if k.tr.Authenticates() {
				// A one-bit change in the IV, the payload or the ICV must
				// fail the ICV and leave the window alone, so that the real
				// packet still gets through. (A change in the sequence
				// number may meet the replay pre-check first.)
				for _, pos := range []int{len(k.outer) + header.ESPHeaderSize, len(wire) - len(k.esp)/2, len(wire) - 1} {
					bad := append([]byte(nil), wire...)
					bad[pos] ^= 0x20
					if pk := decap(bad); pk.Drop != offload.DropICV {
						t.Errorf("bit flipped at %d: drop %v, want %v", pos, pk.Drop, offload.DropICV)
					}
				}
			}
			pk := decap(wire)
			if pk.Drop != offload.NotDropped {
				t.Fatalf("dropped: %v", pk.Drop)
			}
			if got := pk.Buf.Bytes(); !bytes.Equal(got, k.inner) {
				t.Fatalf("decapsulated\n%x\nwant\n%x", got, k.inner)
			}
			wantNH := uint8(header.ProtoIPv4)
			if k.mode == ipsec.Transport {
				wantNH = header.IPv4(k.inner).Protocol()
			}
			if pk.NextHeader != wantNH || pk.SA != sa {
				t.Errorf("next header %d, SA %v; want %d, %v", pk.NextHeader, pk.SA, wantNH, sa)
			}
			if sa.Seq() != k.seq {
				t.Errorf("window top %#x, want %#x", sa.Seq(), k.seq)
			}
			if pk := decap(wire); pk.Drop != offload.DropReplay {
				t.Errorf("replayed packet: drop %v, want %v", pk.Drop, offload.DropReplay)
			}
			c := sa.Counters().Snapshot()
			wantICV := uint64(0)
			if k.tr.Authenticates() {
				wantICV = 3
			}
			if c.Packets != 1 || c.Drops[offload.DropReplay] != 1 || c.Drops[offload.DropICV] != wantICV {
				t.Errorf("SA counters %+v", c.DropMap())
			}
		})
	}
}

func TestESPVectorsEncap(t *testing.T) {
	for _, k := range allESPVectors(t) {
		t.Run(k.name, func(t *testing.T) {
			e := newEngine(t)
			sa := k.addSA(t, e, ipsec.Outbound)
			offload.SetSeq(sa, k.seq-1)
			p := e.NewProcessor()
			offload.SetIVHook(p, func(iv []byte, seq uint64) {
				if seq != k.seq {
					t.Errorf("IV hook got sequence number %#x, want %#x", seq, k.seq)
				}
				copy(iv, k.iv)
			})
			pk := newPacket(k.inner)
			pk.SA = sa
			p.Encap([]*offload.Packet{pk})
			if pk.Drop != offload.NotDropped {
				t.Fatalf("dropped: %v", pk.Drop)
			}
			got := pk.Buf.Bytes()
			if len(got) < header.IPv4MinimumSize || !bytes.Equal(got[header.IPv4MinimumSize:], k.esp) {
				t.Fatalf("ESP\n%x\nwant\n%x", got[min(len(got), header.IPv4MinimumSize):], k.esp)
			}
			checkOuter(t, got[:header.IPv4MinimumSize], k.outer, k.exactOuter)
		})
	}
}

// checkOuter compares an outer IPv4 header the engine wrote with the
// vector's. In tunnel mode the identification is the engine's own counter
// per SA (RFC 791 leaves it to the sender; RFC 3602 case #7 shows the
// ping's identification plus one) and so is the checksum over it; every
// other field must match.
func checkOuter(t *testing.T, got, want []byte, exact bool) {
	t.Helper()
	g, w := header.IPv4(got), header.IPv4(want)
	if !g.ChecksumValid() {
		t.Errorf("outer header checksum does not verify: %x", got)
	}
	if exact {
		if !bytes.Equal(got, want) {
			t.Errorf("outer header %x, want %x", got, want)
		}
		return
	}
	if got[0] != want[0] || g.TOS() != w.TOS() || g.TotalLength() != w.TotalLength() ||
		g.FlagsFragment() != w.FlagsFragment() || g.TTL() != w.TTL() || g.Protocol() != w.Protocol() ||
		g.Src() != w.Src() || g.Dst() != w.Dst() {
		t.Errorf("outer header %x, want %x (identification and checksum aside)", got, want)
	}
	if !bytes.Equal(got[4:6], want[4:6]) {
		t.Logf("outer identification %x, the vector's %x: the engine numbers its own", got[4:6], want[4:6])
	}
}

// TestMcGrewSPIZero runs the draft's packet with SPI 0, which no SA may
// have (RFC 4303 §2.1 reserves SPIs below 256), through a software session
// directly, and checks that the SA database refuses it.
func TestMcGrewSPIZero(t *testing.T) {
	_, vs := mcgrewVectors(t)
	if len(vs) != 1 {
		t.Fatalf("%d packets with a reserved SPI, want 1", len(vs))
	}
	v := vs[0]
	tr := mustTransform(t, v.Get(t, "transform"))
	key := append(v.Hex(t, "key"), v.Hex(t, "salt")...)
	e := newEngine(t)
	_, err := e.AddSA(offload.SAConfig{SPI: 0, Transform: tr, Direction: ipsec.Inbound,
		Src: netip.MustParseAddr(gcmDoc), Dst: netip.MustParseAddr(gcmPeer), CipherKey: key})
	if !errors.Is(err, offload.ErrBadSA) {
		t.Fatalf("SPI 0 accepted: %v", err)
	}
	fb := fallback.New(1)
	defer fb.Close()
	pt, ct := v.Hex(t, "plaintext"), append(v.Hex(t, "ciphertext"), v.Hex(t, "tag")...)
	aad, iv := v.Hex(t, "aad"), v.Hex(t, "iv")
	for _, dir := range []ipsec.Direction{ipsec.Outbound, ipsec.Inbound} {
		s, err := fb.NewSession(driver.SessionConfig{Action: driver.CPUCrypto, Transform: tr, Direction: dir, CipherKey: key})
		if err != nil {
			t.Fatal(err)
		}
		from, to := pt, ct
		if dir == ipsec.Inbound {
			from, to = ct, pt
		}
		b := &driver.Buffer{Mem: make([]byte, len(ct)+16)}
		b.Len = copy(b.Mem, from)
		op := &driver.Op{Session: s, Buf: b, CipherLen: len(pt), DigestOff: len(pt), IVLen: 8, AADLen: uint8(len(aad))}
		copy(op.IV[:], iv)
		copy(op.AAD[:], aad)
		fb.Process([]*driver.Op{op})
		if op.Status != driver.OK || !bytes.Equal(b.Mem[:len(to)], to) {
			t.Errorf("%s: %v, %x; want %x", dir, op.Status, b.Mem[:len(to)], to)
		}
		_ = s.Close()
	}
}
