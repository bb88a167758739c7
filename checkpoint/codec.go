package checkpoint

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// ErrMalformed is wrapped by every error about the contents of a record
// that opened but does not decode.
var ErrMalformed = errors.New("checkpoint: malformed record")

// The encoding of a record, inside its sealed envelope, in network byte
// order; <n> is an n-byte length prefix:
//
//	State   = written-unix-ns(8) period-ns(8) latency-ns(8)
//	          count(4) count × <3>Tunnel
//	Tunnel  = <1>name count(2) count × <2>SA  count(1) count × IKESA
//	SA      = direction(1) mode(1) flags(1) <1>transform-name spi(4)
//	          protocol(1) <1>src <1>dst src-port(2) dst-port(2) window(4)
//	          soft(24) hard(24) used(24) <1>cipher-key <1>auth-key seq(8)
//	          replay-top(8) replay-size(4) <2>words rate(8)
//	lifetime(24) = time-ns(8) bytes(8) packets(8)
//	IKESA   = version(1) format(2) <3>data
//
// flags: 1 UDP encapsulation, 2 ESN.

const (
	flagUDP = 1 << iota
	flagESN
)

// MarshalBinary encodes the state.
func (s *State) MarshalBinary() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint64(uint64(s.Written.UnixNano()))
	b.AddUint64(uint64(max(s.Period, 0)))
	b.AddUint64(uint64(max(s.WriteLatency, 0)))
	b.AddUint32(uint32(len(s.Tunnels)))
	for i := range s.Tunnels {
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { addTunnel(b, &s.Tunnels[i]) })
	}
	return b.Bytes()
}

// UnmarshalBinary decodes a state, replacing s.
func (s *State) UnmarshalBinary(data []byte) error {
	*s = State{}
	in := cryptobyte.String(data)
	var written, period, latency uint64
	var n uint32
	if !in.ReadUint64(&written) || !in.ReadUint64(&period) || !in.ReadUint64(&latency) || !in.ReadUint32(&n) {
		return fmt.Errorf("%w: short state header", ErrMalformed)
	}
	if period > math.MaxInt64 || latency > math.MaxInt64 {
		return fmt.Errorf("%w: period or latency out of range", ErrMalformed)
	}
	s.Written = time.Unix(0, int64(written))
	s.Period, s.WriteLatency = time.Duration(period), time.Duration(latency)
	for i := uint32(0); i < n; i++ {
		var body cryptobyte.String
		if !in.ReadUint24LengthPrefixed(&body) {
			return fmt.Errorf("%w: tunnel %d of %d cut short", ErrMalformed, i, n)
		}
		var t Tunnel
		if err := t.UnmarshalBinary(body); err != nil {
			s.Zero()
			return err
		}
		s.Tunnels = append(s.Tunnels, t)
	}
	if !in.Empty() {
		s.Zero()
		return fmt.Errorf("%w: %d bytes after the last tunnel", ErrMalformed, len(in))
	}
	return nil
}

// MarshalBinary encodes the tunnel.
func (t *Tunnel) MarshalBinary() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	addTunnel(b, t)
	return b.Bytes()
}

func addTunnel(b *cryptobyte.Builder, t *Tunnel) {
	if len(t.Name) == 0 || len(t.Name) > MaxTunnelName || len(t.SAs) > MaxSAsPerRecord || len(t.IKE) > MaxIKESAs {
		b.SetError(fmt.Errorf("checkpoint: tunnel %q: name, SA or IKE SA count out of range", t.Name))
		return
	}
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(t.Name)) })
	b.AddUint16(uint16(len(t.SAs)))
	for i := range t.SAs {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { addSA(b, &t.SAs[i]) })
	}
	b.AddUint8(uint8(len(t.IKE)))
	for _, k := range t.IKE {
		if len(k.Data) > MaxIKEData {
			b.SetError(fmt.Errorf("checkpoint: tunnel %q: IKE record of %d bytes", t.Name, len(k.Data)))
			return
		}
		b.AddUint8(k.Version)
		b.AddUint16(k.Format)
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(k.Data) })
	}
}

// UnmarshalBinary decodes a tunnel, replacing t.
func (t *Tunnel) UnmarshalBinary(data []byte) error {
	*t = Tunnel{}
	in := cryptobyte.String(data)
	var name cryptobyte.String
	var n uint16
	if !in.ReadUint8LengthPrefixed(&name) || len(name) == 0 || !in.ReadUint16(&n) || n > MaxSAsPerRecord {
		return fmt.Errorf("%w: tunnel header", ErrMalformed)
	}
	t.Name = string(name)
	fail := func(err error) error {
		t.Zero()
		return fmt.Errorf("%w: tunnel %q: %w", ErrMalformed, t.Name, err)
	}
	for i := uint16(0); i < n; i++ {
		var body cryptobyte.String
		if !in.ReadUint16LengthPrefixed(&body) {
			return fail(fmt.Errorf("SA %d cut short", i))
		}
		var sa SA
		if err := readSA(body, &sa); err != nil {
			sa.Zero()
			return fail(fmt.Errorf("SA %d: %w", i, err))
		}
		t.SAs = append(t.SAs, sa)
	}
	var nike uint8
	if !in.ReadUint8(&nike) || nike > MaxIKESAs {
		return fail(errors.New("IKE SA count"))
	}
	for i := uint8(0); i < nike; i++ {
		var k IKESA
		var body cryptobyte.String
		if !in.ReadUint8(&k.Version) || !in.ReadUint16(&k.Format) || !in.ReadUint24LengthPrefixed(&body) ||
			len(body) > MaxIKEData || (k.Version != 1 && k.Version != 2) {
			return fail(fmt.Errorf("IKE SA %d", i))
		}
		k.Data = ipsec.Key(body).Clone()
		t.IKE = append(t.IKE, k)
	}
	if !in.Empty() {
		return fail(errors.New("trailing bytes"))
	}
	return nil
}

func addLifetime(b *cryptobyte.Builder, l ipsec.Lifetime) {
	b.AddUint64(uint64(max(l.Time, 0)))
	b.AddUint64(l.Bytes)
	b.AddUint64(l.Packets)
}

func readLifetime(in *cryptobyte.String, l *ipsec.Lifetime) bool {
	var ns uint64
	if !in.ReadUint64(&ns) || !in.ReadUint64(&l.Bytes) || !in.ReadUint64(&l.Packets) || ns > math.MaxInt64 {
		return false
	}
	l.Time = time.Duration(ns)
	return true
}

func addSA(b *cryptobyte.Builder, s *SA) {
	if err := s.check(); err != nil {
		b.SetError(fmt.Errorf("checkpoint: %w", err))
		return
	}
	var flags uint8
	if s.UDPEncap {
		flags |= flagUDP
	}
	if s.ESN {
		flags |= flagESN
	}
	b.AddUint8(uint8(s.Direction))
	b.AddUint8(uint8(s.Mode))
	b.AddUint8(flags)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(s.Transform.Name())) })
	b.AddUint32(s.ID.SPI)
	b.AddUint8(uint8(s.ID.Protocol))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.Src.AsSlice()) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.Dst.AsSlice()) })
	b.AddUint16(s.SrcPort)
	b.AddUint16(s.DstPort)
	b.AddUint32(uint32(s.ReplayWindow))
	addLifetime(b, s.Limits.Soft)
	addLifetime(b, s.Limits.Hard)
	addLifetime(b, s.Used)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.CipherKey) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.AuthKey) })
	b.AddUint64(s.Seq)
	b.AddUint64(s.Replay.Top)
	b.AddUint32(uint32(s.Replay.Size))
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, w := range s.Replay.Seen {
			b.AddUint64(w)
		}
	})
	b.AddUint64(math.Float64bits(s.Rate))
}

func readSA(in cryptobyte.String, s *SA) error {
	var dir, mode, flags, proto uint8
	var name, src, dst, ck, ak, words cryptobyte.String
	var window, rsize uint32
	var rate uint64
	if !in.ReadUint8(&dir) || !in.ReadUint8(&mode) || !in.ReadUint8(&flags) ||
		!in.ReadUint8LengthPrefixed(&name) || !in.ReadUint32(&s.ID.SPI) || !in.ReadUint8(&proto) ||
		!in.ReadUint8LengthPrefixed(&src) || !in.ReadUint8LengthPrefixed(&dst) ||
		!in.ReadUint16(&s.SrcPort) || !in.ReadUint16(&s.DstPort) || !in.ReadUint32(&window) ||
		!readLifetime(&in, &s.Limits.Soft) || !readLifetime(&in, &s.Limits.Hard) || !readLifetime(&in, &s.Used) ||
		!in.ReadUint8LengthPrefixed(&ck) || !in.ReadUint8LengthPrefixed(&ak) || !in.ReadUint64(&s.Seq) ||
		!in.ReadUint64(&s.Replay.Top) || !in.ReadUint32(&rsize) || !in.ReadUint16LengthPrefixed(&words) ||
		!in.ReadUint64(&rate) {
		return errors.New("cut short")
	}
	if !in.Empty() {
		return errors.New("trailing bytes")
	}
	var ok bool
	if s.Transform, ok = transform.Lookup(string(name)); !ok || s.Transform.Name() != string(name) {
		return fmt.Errorf("unknown transform %q", name)
	}
	if s.Src, ok = netip.AddrFromSlice(src); !ok {
		return errors.New("source address")
	}
	if s.Dst, ok = netip.AddrFromSlice(dst); !ok {
		return errors.New("destination address")
	}
	if len(words)%8 != 0 || window > MaxReplayWindow || rsize > MaxReplayWindow || flags&^(flagUDP|flagESN) != 0 {
		return errors.New("replay window or flags")
	}
	s.Direction, s.Mode = ipsec.Direction(dir), ipsec.Mode(mode)
	s.ID.Protocol, s.ID.Dst = transform.Protocol(proto), s.Dst
	s.UDPEncap, s.ESN = flags&flagUDP != 0, flags&flagESN != 0
	s.ReplayWindow, s.Replay.Size = int(window), int(rsize)
	for !words.Empty() {
		var w uint64
		words.ReadUint64(&w)
		s.Replay.Seen = append(s.Replay.Seen, w)
	}
	s.CipherKey, s.AuthKey = ipsec.Key(ck).Clone(), ipsec.Key(ak).Clone()
	s.Rate = math.Float64frombits(rate)
	return s.check()
}

// check refuses an SA record that could not be installed.
func (s *SA) check() error {
	t := s.Transform
	switch {
	case !t.Valid():
		return fmt.Errorf("invalid transform %v", t)
	case s.Direction > ipsec.Inbound || s.Mode > ipsec.Transport:
		return errors.New("direction or mode out of range")
	case s.ID.Protocol != t.Protocol:
		return fmt.Errorf("SA %s: protocol is not the transform's", s.ID)
	case !s.Src.IsValid() || !s.Dst.IsValid() || s.Src.Is4() != s.Dst.Is4() || s.ID.Dst != s.Dst:
		return fmt.Errorf("SA %s: endpoints %v and %v", s.ID, s.Src, s.Dst)
	case len(s.CipherKey) != t.CipherKeyLen() || len(s.AuthKey) != t.AuthKeyLen():
		return fmt.Errorf("SA %s: key lengths do not fit %s", s.ID, t)
	case s.ReplayWindow < 0 || s.ReplayWindow > MaxReplayWindow || s.Replay.Size < 0 || s.Replay.Size > MaxReplayWindow:
		return fmt.Errorf("SA %s: replay window out of range", s.ID)
	case len(s.Replay.Seen) > (s.Replay.Size+63)/64:
		return fmt.Errorf("SA %s: %d replay words for a window of %d", s.ID, len(s.Replay.Seen), s.Replay.Size)
	case !s.ESN && (s.Seq > math.MaxUint32 || s.Replay.Top > math.MaxUint32):
		return fmt.Errorf("SA %s: sequence number above 2^32 without ESN", s.ID)
	case math.IsNaN(s.Rate) || math.IsInf(s.Rate, 0) || s.Rate < 0:
		return fmt.Errorf("SA %s: rate %v", s.ID, s.Rate)
	case s.Used.Time < 0 || s.Limits.Soft.Time < 0 || s.Limits.Hard.Time < 0:
		return fmt.Errorf("SA %s: negative lifetime", s.ID)
	}
	return nil
}
