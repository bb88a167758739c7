package v2

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"testing"

	"github.com/ismgw/ism/internal/testvec"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// TestRFC7427AlgorithmIdentifiers checks the AlgorithmIdentifiers this end
// sends against RFC 7427 Appendix A, and that it reads every form the
// appendix prints.
func TestRFC7427AlgorithmIdentifiers(t *testing.T) {
	v := testvec.Load(t, "testdata/vectors/rfc7427-appendix-a.txt")
	built := map[string]sigScheme{
		"rsa-sha256":        {method: AuthDigSig, hash: crypto.SHA256},
		"rsa-sha384":        {method: AuthDigSig, hash: crypto.SHA384},
		"rsa-sha512":        {method: AuthDigSig, hash: crypto.SHA512},
		"ecdsa-sha256":      {method: AuthDigSig, hash: crypto.SHA256, ecdsa: true},
		"ecdsa-sha384":      {method: AuthDigSig, hash: crypto.SHA384, ecdsa: true},
		"ecdsa-sha512":      {method: AuthDigSig, hash: crypto.SHA512, ecdsa: true},
		"pss-sha256-errata": {method: AuthDigSig, hash: crypto.SHA256, pss: true, salt: 32},
	}
	for name, s := range built {
		if got := s.algorithmIdentifier(); !bytes.Equal(got, v.Hex(t, name)) {
			t.Errorf("%s: built %x, RFC 7427 has %x", name, got, v.Hex(t, name))
		}
	}
	parsed := map[string]sigScheme{
		"rsa-sha1":          {method: AuthDigSig, hash: crypto.SHA1},
		"ecdsa-sha1":        {method: AuthDigSig, hash: crypto.SHA1, ecdsa: true},
		"pss-empty":         {method: AuthDigSig, hash: crypto.SHA1, pss: true, salt: 20},
		"pss-sha1":          {method: AuthDigSig, hash: crypto.SHA1, pss: true, salt: 20},
		"pss-sha256":        {method: AuthDigSig, hash: crypto.SHA256, pss: true, salt: 32},
		"pss-sha256-errata": {method: AuthDigSig, hash: crypto.SHA256, pss: true, salt: 32},
	}
	for name, s := range built {
		parsed[name] = s
	}
	for name, want := range parsed {
		got, err := parseAlgorithmIdentifier(v.Hex(t, name))
		if err != nil || got != want {
			t.Errorf("%s: parsed %+v, %v; want %+v", name, got, err, want)
		}
	}
	for _, bad := range [][]byte{
		nil, {0x30, 0x00},
		append(v.Hex(t, "rsa-sha256"), 0), // trailing byte
		{0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x05, 0xa3, 0x03, 0x02, 0x01, 0x02}, // trailer 2
		{0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04},                                           // md5WithRSAEncryption
	} {
		if s, err := parseAlgorithmIdentifier(bad); err == nil {
			t.Errorf("%x parsed as %+v", bad, s)
		}
	}
}

// TestPSSIdentifiersMatchX509: crypto/x509, a second encoder, writes the
// same RSASSA-PSS AlgorithmIdentifiers for SHA-256, SHA-384 and SHA-512 in
// the certificates it signs.
func TestPSSIdentifiersMatchX509(t *testing.T) {
	key := testRSAKey(t)
	for _, c := range []struct {
		alg  x509.SignatureAlgorithm
		hash crypto.Hash
	}{{x509.SHA256WithRSAPSS, crypto.SHA256}, {x509.SHA384WithRSAPSS, crypto.SHA384}, {x509.SHA512WithRSAPSS, crypto.SHA512}} {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pss"}, SignatureAlgorithm: c.alg}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		in := cryptobyte.String(der)
		var cert, alg cryptobyte.String
		if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.SkipASN1(cbasn1.SEQUENCE) || !cert.ReadASN1Element(&alg, cbasn1.SEQUENCE) {
			t.Fatal("certificate does not parse")
		}
		s := sigScheme{method: AuthDigSig, hash: c.hash, pss: true, salt: c.hash.Size()}
		if got := s.algorithmIdentifier(); !bytes.Equal(got, alg) {
			t.Errorf("%v: built %x, crypto/x509 wrote %x", c.alg, got, []byte(alg))
		}
	}
}

var (
	rsaKeyOnce sync.Once
	rsaKey     *rsa.PrivateKey
)

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaKeyOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaKey
}

// TestSignatureSchemes: the scheme each key and peer announcement leads
// to, signed and verified, and refused with the wrong key, the wrong data
// or a method that does not fit the key.
func TestSignatureSchemes(t *testing.T) {
	ecKey := func(c elliptic.Curve) crypto.Signer {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	p256, p384, p521 := ecKey(elliptic.P256()), ecKey(elliptic.P384()), ecKey(elliptic.P521())
	all := []crypto.Hash{crypto.SHA512, crypto.SHA384, crypto.SHA256}
	cases := []struct {
		name   string
		key    crypto.Signer
		peer   []crypto.Hash
		pss    bool
		method AuthMethod
		hash   crypto.Hash
	}{
		{"rsa-classic", testRSAKey(t), nil, false, AuthRSASig, crypto.SHA1},
		{"rsa-pss-without-7427", testRSAKey(t), nil, true, AuthRSASig, crypto.SHA1},
		{"rsa-7427", testRSAKey(t), all, false, AuthDigSig, crypto.SHA256},
		{"rsa-pss-7427", testRSAKey(t), all, true, AuthDigSig, crypto.SHA256},
		{"rsa-7427-sha512-only", testRSAKey(t), []crypto.Hash{crypto.SHA512}, true, AuthDigSig, crypto.SHA512},
		{"rsa-7427-none-common", testRSAKey(t), []crypto.Hash{}, false, AuthRSASig, crypto.SHA1},
		{"p256-classic", p256, nil, false, AuthECDSAP256, crypto.SHA256},
		{"p384-classic", p384, nil, false, AuthECDSAP384, crypto.SHA384},
		{"p521-classic", p521, nil, false, AuthECDSAP521, crypto.SHA512},
		{"p384-7427", p384, all, false, AuthDigSig, crypto.SHA384},
		{"p256-7427-sha512", p256, []crypto.Hash{crypto.SHA512}, false, AuthDigSig, crypto.SHA512},
	}
	octets := []byte("RealMessage | Nonce | prf(SK_p, ID)")
	for _, c := range cases {
		s, err := chooseScheme(c.key.Public(), c.peer, c.pss)
		if err != nil || s.method != c.method || s.hash != c.hash {
			t.Errorf("%s: chose %v, %v; want method %d %s", c.name, s, err, c.method, hashName(c.hash))
			continue
		}
		a, err := s.sign(c.key, octets, rand.Reader)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := verifySignature(c.key.Public(), a, octets)
		if err != nil || got.method != s.method || got.hash != s.hash || got.pss != s.pss {
			t.Errorf("%s: verified as %v, %v", c.name, got, err)
		}
		if _, err := verifySignature(c.key.Public(), a, append(octets, 0)); err == nil {
			t.Errorf("%s: a signature of other data verifies", c.name)
		}
		other := p256
		if c.key == p256 {
			other = p384
		}
		if _, err := verifySignature(other.Public(), a, octets); err == nil {
			t.Errorf("%s: verifies with another key", c.name)
		}
	}
	// ECDSA signed as method 9, claimed as 10.
	a, _ := sigScheme{method: AuthECDSAP256, hash: crypto.SHA256, ecdsa: true}.sign(p256, octets, rand.Reader)
	a.Method = AuthECDSAP384
	if _, err := verifySignature(p256.Public(), a, octets); err == nil {
		t.Error("method 10 with a P-256 key verifies")
	}
	// Method 14 with SHA-1, which this end does not announce.
	a, _ = sigScheme{method: AuthDigSig, hash: crypto.SHA1}.sign(testRSAKey(t), octets, rand.Reader)
	if _, err := verifySignature(testRSAKey(t).Public(), a, octets); err == nil {
		t.Error("an RFC 7427 signature with SHA-1 is accepted")
	}
	for _, data := range [][]byte{nil, {0}, {200, 1, 2}} {
		if _, err := verifySignature(p256.Public(), Auth{Method: AuthDigSig, Data: data}, octets); err == nil {
			t.Errorf("AUTH data %x accepted", data)
		}
	}
}

// TestPeerHashes reads SIGNATURE_HASH_ALGORITHMS: the common hashes, an
// empty list when there are none, nil when the notify is absent.
func TestPeerHashes(t *testing.T) {
	m := &Message{}
	if peerHashes(m) != nil {
		t.Fatal("no notify, yet hashes")
	}
	m.Payloads = []Payload{notifyPayload(SignatureHashAlgorithms, []byte{0, 1, 0, 4, 0, 9, 0, 2, 7})}
	if got := peerHashes(m); len(got) != 2 || got[0] != crypto.SHA512 || got[1] != crypto.SHA256 {
		t.Fatalf("hashes %v", got)
	}
	m.Payloads = []Payload{notifyPayload(SignatureHashAlgorithms, []byte{0, 1})}
	if got := peerHashes(m); got == nil || len(got) != 0 {
		t.Fatalf("SHA-1 only: %v", got)
	}
	m.Payloads = []Payload{hashAlgorithmsNotify()}
	if got := peerHashes(m); len(got) != 3 {
		t.Fatalf("our own notify reads %v", got)
	}
}
