package ike

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// RecordWriter builds an exported IKE SA record (SAState.Data) field by
// field, in network byte order; RecordReader reads one back. Both daemons
// use them, so that the encodings of addresses, times, identities,
// selectors, transforms and keys are written once. A field with a length
// prefix holds at most 255 bytes (Bytes) or 65535 (Block). The zero value
// is not usable; call NewRecordWriter.
type RecordWriter struct{ b *cryptobyte.Builder }

// NewRecordWriter starts a record.
func NewRecordWriter() *RecordWriter { return &RecordWriter{b: cryptobyte.NewBuilder(nil)} }

// Finish returns the record, or the first error of a field that did not
// fit.
func (w *RecordWriter) Finish() (ipsec.Key, error) {
	b, err := w.b.Bytes()
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("ike: record: %w", err)
	}
	return ipsec.Key(b), nil
}

// U8, U16, U32 and U64 write an integer.
func (w *RecordWriter) U8(v uint8)   { w.b.AddUint8(v) }
func (w *RecordWriter) U16(v uint16) { w.b.AddUint16(v) }
func (w *RecordWriter) U32(v uint32) { w.b.AddUint32(v) }
func (w *RecordWriter) U64(v uint64) { w.b.AddUint64(v) }

// Bool writes 1 or 0.
func (w *RecordWriter) Bool(v bool) {
	if v {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// Bytes writes b with a one-byte length.
func (w *RecordWriter) Bytes(b []byte) {
	w.b.AddUint8LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(b) })
}

// Block writes what f writes with a two-byte length: a nested record.
func (w *RecordWriter) Block(f func(w *RecordWriter)) {
	w.b.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) { f(&RecordWriter{b: c}) })
}

// Time writes t as Unix nanoseconds, 0 for the zero time.
func (w *RecordWriter) Time(t time.Time) {
	if t.IsZero() {
		w.U64(0)
		return
	}
	w.U64(uint64(t.UnixNano()))
}

// Duration writes d in nanoseconds (negative as 0).
func (w *RecordWriter) Duration(d time.Duration) { w.U64(uint64(max(d, 0))) }

// Addr writes an address (none: empty).
func (w *RecordWriter) Addr(a netip.Addr) { w.Bytes(a.AsSlice()) }

// AddrPort writes an address and a port.
func (w *RecordWriter) AddrPort(a netip.AddrPort) {
	w.Addr(a.Addr())
	w.U16(a.Port())
}

// String writes s (at most 255 bytes).
func (w *RecordWriter) String(s string) { w.Bytes([]byte(s)) }

// Identity writes an identity.
func (w *RecordWriter) Identity(id Identity) {
	w.U8(uint8(id.Kind))
	w.Addr(id.Addr)
	w.Block(func(w *RecordWriter) { w.b.AddBytes([]byte(id.Name)) })
}

// Transform writes a transform by name ("" for none).
func (w *RecordWriter) Transform(t transform.Transform) {
	if !t.Valid() {
		w.String("")
		return
	}
	w.String(t.Name())
}

// Lifetime writes a lifetime.
func (w *RecordWriter) Lifetime(l ipsec.Lifetime) {
	w.Duration(l.Time)
	w.U64(l.Bytes)
	w.U64(l.Packets)
}

// SAID writes an SA identity.
func (w *RecordWriter) SAID(id ipsec.SAID) {
	w.Addr(id.Dst)
	w.U32(id.SPI)
	w.U8(uint8(id.Protocol))
}

// Selector writes a traffic selector.
func (w *RecordWriter) Selector(s selector.Selector) {
	w.U8(uint8(s.Kind))
	w.Addr(s.From)
	w.Addr(s.To)
	w.U8(uint8(s.Bits))
}

// RecordReader reads a record written by a RecordWriter. A read past the
// end or of a malformed field fails the reader: every later read returns
// zero values and Err says where it first failed.
type RecordReader struct {
	s   cryptobyte.String
	err error
}

// NewRecordReader reads data.
func NewRecordReader(data []byte) *RecordReader { return &RecordReader{s: cryptobyte.String(data)} }

// errShort is the reader's failure on a field cut short.
var errShort = errors.New("cut short")

func (r *RecordReader) fail(what string, err error) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %w", ErrImport, what, err)
	}
}

// Err returns the reader's first failure, or one about trailing bytes
// when end is set and bytes are left.
func (r *RecordReader) Err(end bool) error {
	if r.err == nil && end && !r.s.Empty() {
		return fmt.Errorf("%w: %d bytes after the record", ErrImport, len(r.s))
	}
	return r.err
}

// U8, U16, U32 and U64 read an integer.
func (r *RecordReader) U8() (v uint8) {
	if r.err == nil && !r.s.ReadUint8(&v) {
		r.fail("u8", errShort)
	}
	return v
}

func (r *RecordReader) U16() (v uint16) {
	if r.err == nil && !r.s.ReadUint16(&v) {
		r.fail("u16", errShort)
	}
	return v
}

func (r *RecordReader) U32() (v uint32) {
	if r.err == nil && !r.s.ReadUint32(&v) {
		r.fail("u32", errShort)
	}
	return v
}

func (r *RecordReader) U64() (v uint64) {
	if r.err == nil && !r.s.ReadUint64(&v) {
		r.fail("u64", errShort)
	}
	return v
}

// Bool reads a Bool; another value than 0 or 1 fails.
func (r *RecordReader) Bool() bool {
	v := r.U8()
	if v > 1 {
		r.fail("bool", fmt.Errorf("value %d", v))
	}
	return v == 1
}

// Bytes reads a Bytes field into fresh memory.
func (r *RecordReader) Bytes() []byte {
	var b cryptobyte.String
	if r.err == nil && !r.s.ReadUint8LengthPrefixed(&b) {
		r.fail("bytes", errShort)
	}
	return append([]byte(nil), b...)
}

// Block reads a nested record with f, which must read it to its end.
func (r *RecordReader) Block(what string, f func(r *RecordReader)) {
	var b cryptobyte.String
	if r.err == nil && !r.s.ReadUint16LengthPrefixed(&b) {
		r.fail(what, errShort)
	}
	if r.err != nil {
		return
	}
	in := &RecordReader{s: b}
	f(in)
	if err := in.Err(true); err != nil {
		r.fail(what, err)
	}
}

// Time reads a Time.
func (r *RecordReader) Time() time.Time {
	v := r.U64()
	if v == 0 || v > 1<<63-1 {
		return time.Time{}
	}
	return time.Unix(0, int64(v))
}

// Duration reads a Duration.
func (r *RecordReader) Duration() time.Duration {
	v := r.U64()
	if v > 1<<63-1 {
		r.fail("duration", fmt.Errorf("%d ns", v))
		return 0
	}
	return time.Duration(v)
}

// Addr reads an Addr; an empty one is the zero Addr.
func (r *RecordReader) Addr() netip.Addr {
	b := r.Bytes()
	if len(b) == 0 {
		return netip.Addr{}
	}
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		r.fail("address", fmt.Errorf("%d bytes", len(b)))
	}
	return a
}

// AddrPort reads an AddrPort.
func (r *RecordReader) AddrPort() netip.AddrPort {
	a := r.Addr()
	p := r.U16()
	if !a.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, p)
}

// String reads a String.
func (r *RecordReader) String() string { return string(r.Bytes()) }

// Identity reads an Identity.
func (r *RecordReader) Identity() Identity {
	id := Identity{Kind: IDKind(r.U8()), Addr: r.Addr()}
	r.Block("identity", func(in *RecordReader) {
		id.Name = string(in.s)
		in.s = nil
	})
	if id.Kind > IDDN {
		r.fail("identity", fmt.Errorf("kind %d", id.Kind))
	}
	return id
}

// Transform reads a Transform; an unknown name fails.
func (r *RecordReader) Transform() transform.Transform {
	name := r.String()
	if name == "" || r.err != nil {
		return transform.Transform{}
	}
	t, ok := transform.Lookup(name)
	if !ok {
		r.fail("transform", fmt.Errorf("unknown %q", name))
	}
	return t
}

// Lifetime reads a Lifetime.
func (r *RecordReader) Lifetime() ipsec.Lifetime {
	return ipsec.Lifetime{Time: r.Duration(), Bytes: r.U64(), Packets: r.U64()}
}

// SAID reads an SAID.
func (r *RecordReader) SAID() ipsec.SAID {
	return ipsec.SAID{Dst: r.Addr(), SPI: r.U32(), Protocol: transform.Protocol(r.U8())}
}

// Selector reads a Selector.
func (r *RecordReader) Selector() selector.Selector {
	s := selector.Selector{Kind: selector.Kind(r.U8()), From: r.Addr(), To: r.Addr(), Bits: int(r.U8())}
	if s.Kind > selector.Range || s.From.IsValid() && s.To.IsValid() && s.From.Is4() != s.To.Is4() {
		r.fail("selector", fmt.Errorf("kind %d from %v to %v", s.Kind, s.From, s.To))
	}
	return s
}
