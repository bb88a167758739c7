package ipsec

import (
	"fmt"
	"log/slog"
)

// Key is secret keying material. Every way of printing it prints
// "[redacted]": fmt verbs, %#v, and slog. Zero overwrites it.
type Key []byte

const redacted = "[redacted]"

// String returns "[redacted]".
func (Key) String() string { return redacted }

// GoString returns "[redacted]".
func (Key) GoString() string { return redacted }

// Format prints "[redacted]" for every verb.
func (Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue logs "[redacted]".
func (Key) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns "[redacted]", so that encoding/json and other text
// encoders never see the key.
func (Key) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Zero overwrites the key with zeros.
func (k Key) Zero() { clear(k) }

// Clone returns a copy in fresh memory.
func (k Key) Clone() Key {
	if k == nil {
		return nil
	}
	return append(Key(nil), k...)
}
