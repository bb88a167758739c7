package checkpoint

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// KeySize is the size of a wrapping key: AES-256.
const KeySize = 32

// Envelope errors: what is wrong with sealed bytes, for a message that
// says which.
var (
	ErrNotCheckpoint = errors.New("checkpoint: not an ISM checkpoint")
	ErrVersion       = errors.New("checkpoint: unsupported checkpoint version")
	ErrWrongKey      = errors.New("checkpoint: sealed with another key")
	ErrCorrupt       = errors.New("checkpoint: corrupt or tampered (GCM tag does not verify)")
)

// Kind says what an envelope holds, so that one kind is never opened as
// another.
type Kind uint8

// Kinds of envelope.
const (
	KindState  Kind = 1 // a gateway's state file
	KindTunnel Kind = 2 // one tunnel's record in a cluster's store
	KindCheck  Kind = 3 // a fixed text that proves a key (cluster key check)
)

// The envelope: a header, then the record sealed with AES-256-GCM under a
// key derived for this envelope alone with HKDF-SHA-256 from the wrapping
// key and a random 192-bit salt. Every envelope having its own key, the
// 96-bit GCM nonce is fixed, and the number of records sealed under one
// wrapping key is not bounded by GCM's 2^32 random-nonce limit (the
// construction of XAES-256-GCM, from the standard library's parts).
//
//	magic "ISMCKP"(6) version(2) kind(1) key-id(8) salt(24) ciphertext+tag
//
// The header and the caller's context (the etcd key of a record) are the
// additional data, so a record moved elsewhere does not open.
const (
	magic      = "ISMCKP"
	version    = 1
	saltLen    = 24
	headerLen  = len(magic) + 2 + 1 + 8 + saltLen
	gcmTagSize = 16
	// Overhead is how many bytes sealing adds to a record.
	Overhead = headerLen + gcmTagSize
)

// Sealer seals and opens records under one wrapping key. It keeps the key
// for the life of the process and never prints it. It is safe for
// concurrent use.
type Sealer struct {
	key [KeySize]byte
	id  [8]byte
}

// NewSealer returns a Sealer for a 32-byte key; the caller may zero its
// copy afterwards.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("checkpoint: a wrapping key is %d bytes, got %d", KeySize, len(key))
	}
	s := &Sealer{}
	copy(s.key[:], key)
	h := sha256.New()
	h.Write([]byte("ism checkpoint key id\x00"))
	h.Write(key)
	copy(s.id[:], h.Sum(nil))
	return s, nil
}

// KeyID names the key: 16 hex digits of a hash of it, safe to show.
func (s *Sealer) KeyID() string { return hex.EncodeToString(s.id[:]) }

// String names the key by its ID only.
func (s *Sealer) String() string { return "wrapping key " + s.KeyID() }

// Format prints String for every verb, %#v included.
func (s *Sealer) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// aead returns the GCM of the envelope with the given salt.
func (s *Sealer) aead(salt []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, s.key[:], salt, "ism checkpoint envelope v1", KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Seal returns the envelope of plaintext, bound to kind and context.
func (s *Sealer) Seal(kind Kind, plaintext, context []byte) ([]byte, error) {
	out := make([]byte, headerLen, headerLen+len(plaintext)+gcmTagSize)
	copy(out, magic)
	binary.BigEndian.PutUint16(out[len(magic):], version)
	out[len(magic)+2] = byte(kind)
	copy(out[len(magic)+3:], s.id[:])
	salt := out[headerLen-saltLen : headerLen]
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	g, err := s.aead(salt)
	if err != nil {
		return nil, err
	}
	var nonce [12]byte
	return g.Seal(out, nonce[:], plaintext, ad(out[:headerLen], context)), nil
}

// Open checks an envelope and returns its record. The errors say whether
// the bytes are no checkpoint at all, of another version or kind, sealed
// under another key, or corrupt.
func (s *Sealer) Open(kind Kind, env, context []byte) ([]byte, error) {
	if len(env) < len(magic) || !bytes.Equal(env[:len(magic)], []byte(magic)) {
		return nil, ErrNotCheckpoint
	}
	if len(env) < Overhead {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a header and tag", ErrCorrupt, len(env))
	}
	if v := binary.BigEndian.Uint16(env[len(magic):]); v != version {
		return nil, fmt.Errorf("%w %d (this build reads %d)", ErrVersion, v, version)
	}
	if k := Kind(env[len(magic)+2]); k != kind {
		return nil, fmt.Errorf("%w: holds kind %d, want %d", ErrNotCheckpoint, k, kind)
	}
	if id := env[len(magic)+3 : len(magic)+11]; !bytes.Equal(id, s.id[:]) {
		return nil, fmt.Errorf("%w: key %x, this node's key is %s", ErrWrongKey, id, s.KeyID())
	}
	g, err := s.aead(env[headerLen-saltLen : headerLen])
	if err != nil {
		return nil, err
	}
	var nonce [12]byte
	out, err := g.Open(nil, nonce[:], env[headerLen:], ad(env[:headerLen], context))
	if err != nil {
		return nil, ErrCorrupt
	}
	return out, nil
}

func ad(header, context []byte) []byte {
	return append(append(make([]byte, 0, len(header)+len(context)), header...), context...)
}
