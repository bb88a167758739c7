package ike

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// Group is a Diffie-Hellman group as IKE numbers them: the MODP groups of
// RFC 2409 §6.1–6.2 (1, 2) and RFC 3526 (5, 14, 15, 16), and the ECP groups
// of RFC 5903 (19, 20, 21), and Curve25519 of RFC 8031 (31, IKEv2 only);
// or, for IKEv2's additional key exchanges, a KEM (kem.go).
// Groups are immutable and safe for concurrent use.
type Group struct {
	ID       int
	Name     string
	Strength int // approximate symmetric strength in bits, for ordering
	p        *big.Int
	expBits  int // private exponent size for MODP groups
	curve    ecdh.Curve
	montgom  bool // X25519: public values are the u-coordinate alone (RFC 8031 §2)
	size     int  // bytes of a public value on the wire (a KEM's encapsulation key)
	kem      bool // a key encapsulation mechanism (kem.go)
	ctSize   int  // bytes of a KEM's ciphertext
}

// KeyExchange is one side's ephemeral Diffie-Hellman key. Zero it when done.
type KeyExchange struct {
	g      *Group
	x      *big.Int
	ec     *ecdh.PrivateKey
	dk     *mlkem.DecapsulationKey768
	Public []byte // the KE payload data
}

var (
	errBadPublic = errors.New("ike: peer's key exchange data is invalid")
	errZeroed    = errors.New("ike: key exchange already zeroed")
	groups       = map[int]*Group{}
)

func modp(id int, name string, strength, expBits int, hex string) {
	p, ok := new(big.Int).SetString(hex, 16)
	if !ok {
		panic("ike: bad MODP prime for group " + name)
	}
	groups[id] = &Group{ID: id, Name: name, Strength: strength, p: p, expBits: expBits, size: (p.BitLen() + 7) / 8}
}

func ecp(id int, name string, strength int, c ecdh.Curve, size int) {
	groups[id] = &Group{ID: id, Name: name, Strength: strength, curve: c, size: size}
}

func init() {
	modp(1, "modp768", 62, 256, modp768)
	modp(2, "modp1024", 77, 256, modp1024)
	modp(5, "modp1536", 90, 256, modp1536)
	modp(14, "modp2048", 110, 256, modp2048)
	modp(15, "modp3072", 130, 384, modp3072)
	modp(16, "modp4096", 150, 512, modp4096)
	ecp(19, "ecp256", 128, ecdh.P256(), 64)
	ecp(20, "ecp384", 192, ecdh.P384(), 96)
	ecp(21, "ecp521", 256, ecdh.P521(), 132)
	groups[31] = &Group{ID: 31, Name: "curve25519", Strength: 128, curve: ecdh.X25519(), montgom: true, size: 32}
}

// LookupGroup returns the group with IKE number id.
func LookupGroup(id int) (*Group, bool) {
	g, ok := groups[id]
	return g, ok
}

// GroupIDs returns the numbers of every supported group.
func GroupIDs() []int { return []int{1, 2, 5, 14, 15, 16, 19, 20, 21, 31} }

func (g *Group) String() string { return fmt.Sprintf("group %d (%s)", g.ID, g.Name) }

// Prime returns the modulus of a MODP group, nil for an ECP group.
func (g *Group) Prime() *big.Int {
	if g.p == nil {
		return nil
	}
	return new(big.Int).Set(g.p)
}

// PublicSize is the length of a public value on the wire: the modulus
// length for MODP groups (RFC 2409 §5), x|y for ECP groups (RFC 5903 §7),
// 32 bytes for Curve25519 (RFC 8031 §2).
func (g *Group) PublicSize() int { return g.size }

// GenerateKey makes an ephemeral key from rand (in publicKeyWork's turn).
func (g *Group) GenerateKey(rand io.Reader) (*KeyExchange, error) {
	publicKeyWork.take()
	defer publicKeyWork.leave()
	if g.kem {
		return g.generateKEM(rand)
	}
	if g.curve != nil {
		k, err := g.curve.GenerateKey(rand)
		if err != nil {
			return nil, fmt.Errorf("ike: %v key: %w", g, err)
		}
		return &KeyExchange{g: g, ec: k, Public: g.wirePublic(k)}, nil
	}
	buf := make([]byte, g.expBits/8)
	if _, err := io.ReadFull(rand, buf); err != nil {
		return nil, fmt.Errorf("ike: %v key: %w", g, err)
	}
	x := new(big.Int).SetBytes(buf)
	clear(buf)
	x.SetBit(x, g.expBits-1, 1) // a full-size exponent
	return g.newMODPKey(x), nil
}

// NewKey returns the key with private value priv (big-endian): for tests
// with published vectors.
func (g *Group) NewKey(priv []byte) (*KeyExchange, error) {
	if g.curve != nil {
		k, err := g.curve.NewPrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("ike: %v key: %w", g, err)
		}
		return &KeyExchange{g: g, ec: k, Public: g.wirePublic(k)}, nil
	}
	return g.newMODPKey(new(big.Int).SetBytes(priv)), nil
}

// wirePublic returns the public value as the KE payload carries it:
// without SEC 1's 0x04 prefix for ECP groups, as is for X25519.
func (g *Group) wirePublic(k *ecdh.PrivateKey) []byte {
	if g.montgom {
		return k.PublicKey().Bytes()
	}
	return k.PublicKey().Bytes()[1:]
}

func (g *Group) newMODPKey(x *big.Int) *KeyExchange {
	y := new(big.Int).Exp(big.NewInt(2), x, g.p)
	return &KeyExchange{g: g, x: x, Public: y.FillBytes(make([]byte, g.size))}
}

// Group returns the key's group.
func (k *KeyExchange) Group() *Group { return k.g }

// Shared returns the shared secret g^xy with the peer's public value: fixed
// length for MODP groups, the x coordinate for ECP groups (RFC 5903 §7),
// the 32-byte X25519 output for Curve25519 (RFC 8031 §2.2).
// A public value of the wrong size, out of range or off the curve is an
// error. For a KEM, peer is the responder's ciphertext and the secret is
// its decapsulation (kem.go). It runs in publicKeyWork's turn.
func (k *KeyExchange) Shared(peer []byte) ([]byte, error) {
	publicKeyWork.take()
	defer publicKeyWork.leave()
	g := k.g
	if g.kem {
		return k.decapsulate(peer)
	}
	if len(peer) != g.size {
		return nil, fmt.Errorf("%w: %d bytes for %v", errBadPublic, len(peer), g)
	}
	if g.curve != nil {
		if k.ec == nil {
			return nil, errZeroed
		}
		enc := append([]byte{4}, peer...)
		if g.montgom {
			enc = peer
		}
		// X25519: crypto/ecdh refuses an all-zero shared secret (RFC
		// 8031 §2.3, RFC 7748 §6.1).
		pub, err := g.curve.NewPublicKey(enc)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadPublic, err)
		}
		s, err := k.ec.ECDH(pub)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadPublic, err)
		}
		return s, nil
	}
	if k.x == nil {
		return nil, errZeroed
	}
	y := new(big.Int).SetBytes(peer)
	// 1 < y < p-1 (RFC 2631 §2.1.5, NIST SP 800-56A 5.6.2.3.1).
	pm1 := new(big.Int).Sub(g.p, big.NewInt(1))
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(pm1) >= 0 {
		return nil, fmt.Errorf("%w: out of range", errBadPublic)
	}
	z := new(big.Int).Exp(y, k.x, g.p)
	return z.FillBytes(make([]byte, g.size)), nil
}

// Zero forgets the private value.
func (k *KeyExchange) Zero() {
	if k.x != nil {
		k.x.SetInt64(0)
		k.x = nil
	}
	k.ec = nil
	k.dk = nil
}
