package header

import "encoding/binary"

// ESP is the header of an ESP packet (RFC 4303 §2):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|               Security Parameters Index (SPI)                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      Sequence Number                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Payload Data* (variable)                   |
//	~                                                               ~
//	+               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|               |     Padding (0-255 bytes)                     |
//	+-+-+-+-+-+-+-+-+               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |  Pad Length   | Next Header   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Integrity Check Value-ICV   (variable)                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type ESP []byte

const (
	espSPI = 0
	espSeq = 4
)

// ESPHeaderSize is the size of the SPI and sequence number fields.
const ESPHeaderSize = 8

// ESPTrailerSize is the size of the Pad Length and Next Header fields.
const ESPTrailerSize = 2

// ESPFields holds the ESP header fields.
type ESPFields struct {
	SPI uint32
	Seq uint32 // low 32 bits of the sequence number
}

// IsValid reports whether b holds at least an ESP header.
func (b ESP) IsValid() bool { return len(b) >= ESPHeaderSize }

// SPI returns the Security Parameters Index.
func (b ESP) SPI() uint32 { return binary.BigEndian.Uint32(b[espSPI:]) }

// Seq returns the sequence number field.
func (b ESP) Seq() uint32 { return binary.BigEndian.Uint32(b[espSeq:]) }

// Encode writes f into the header.
func (b ESP) Encode(f *ESPFields) {
	binary.BigEndian.PutUint32(b[espSPI:], f.SPI)
	binary.BigEndian.PutUint32(b[espSeq:], f.Seq)
}

// ESPTrailer is a view ending at the Next Header field of an ESP payload.
type ESPTrailer []byte

// PadLen returns the Pad Length field.
func (t ESPTrailer) PadLen() int { return int(t[len(t)-2]) }

// NextHeader returns the Next Header field.
func (t ESPTrailer) NextHeader() uint8 { return t[len(t)-1] }

// PaddingOK reports whether the padding holds the default monotonic bytes
// 1, 2, 3, ... (RFC 4303 §2.4). It requires len(t) >= PadLen()+2.
func (t ESPTrailer) PaddingOK() bool {
	n := t.PadLen()
	pad := t[len(t)-2-n : len(t)-2]
	for i, v := range pad {
		if int(v) != i+1 {
			return false
		}
	}
	return true
}

// EncodeTrailer writes padLen monotonic pad bytes, the Pad Length and the
// Next Header at the start of b and returns the bytes written.
func EncodeTrailer(b []byte, padLen int, next uint8) int {
	for i := range padLen {
		b[i] = byte(i + 1)
	}
	b[padLen] = byte(padLen)
	b[padLen+1] = next
	return padLen + ESPTrailerSize
}
