package header

// Fuzzers for the ESP and AH views: IsValid gates every accessor, nothing
// panics, and decode(encode(x)) == x.
//
// Run: go test -run XXX -fuzz FuzzESPView -fuzztime 60s ./offload/header

import (
	"bytes"
	"testing"
)

func FuzzESPView(f *testing.F) {
	f.Add(unhex(f, rfc3602Case5ESP))
	f.Add(unhex(f, rfc3602Case5Trailer))
	f.Add(unhex(f, "01020304 00000005 10111213 14151617")) // RFC 7634 Appendix A
	f.Add([]byte{})
	f.Add([]byte{0, 0})
	f.Add([]byte{1, 0xff, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := ESP(data)
		if !b.IsValid() {
			if len(data) >= ESPHeaderSize {
				t.Fatalf("%d bytes refused", len(data))
			}
		} else {
			out := make(ESP, ESPHeaderSize)
			out.Encode(&ESPFields{SPI: b.SPI(), Seq: b.Seq()})
			if !bytes.Equal(out, data[:ESPHeaderSize]) {
				t.Fatalf("round trip %x -> %x", data[:ESPHeaderSize], []byte(out))
			}
		}
		// The same bytes read as the end of a decrypted payload.
		if len(data) < ESPTrailerSize {
			return
		}
		tr := ESPTrailer(data)
		pad := tr.PadLen()
		if pad+ESPTrailerSize > len(data) {
			return // PaddingOK's precondition does not hold
		}
		want := make([]byte, pad+ESPTrailerSize)
		EncodeTrailer(want, pad, tr.NextHeader())
		if ok, same := tr.PaddingOK(), bytes.Equal(want, data[len(data)-len(want):]); ok != same {
			t.Fatalf("PaddingOK %v for %x, canonical trailer %x", ok, data, want)
		}
	})
}

func FuzzAHView(f *testing.F) {
	f.Add(unhex(f, "04040000 00001234 00000007 a1a2a3a4 a5a6a7a8 a9aaabac"))
	f.Add(unhex(f, "29060000 00002002 00000001 00000000 00000000 00000000 00000000 00000000")) // IPv6, 16-byte ICV + padding
	f.Add(unhex(f, "04010000 00000100 00000001"))
	f.Add([]byte{4, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := AH(data)
		if !b.IsValid() {
			if len(data) >= AHMinimumSize && b.Length() >= AHMinimumSize && len(data) >= b.Length() {
				t.Fatalf("valid header refused: %x", data)
			}
			return
		}
		n := b.Length()
		icv := b.ICV()
		if n%4 != 0 || len(icv) != n-AHMinimumSize {
			t.Fatalf("length %d with a %d-byte ICV field", n, len(icv))
		}
		out := make(AH, n)
		out.Encode(&AHFields{NextHeader: b.NextHeader(), Length: n, SPI: b.SPI(), Seq: b.Seq()})
		copy(out.ICV(), icv)
		want := append([]byte(nil), data[:n]...)
		want[2], want[3] = 0, 0 // Encode writes the reserved field as zero
		if !bytes.Equal(out, want) {
			t.Fatalf("round trip %x -> %x", want, []byte(out))
		}
	})
}
