package v2

import (
	"bytes"
	"crypto/elliptic"
	"crypto/rsa"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"testing"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/swantest"
)

// Certificates for pair tests, valid around t0 (the fake clock's start).

var (
	idA     = ike.Identity{Kind: ike.IDFQDN, Name: "a.example.net"}
	idB     = ike.Identity{Kind: ike.IDFQDN, Name: "b.example.net"}
	rsa2048 = swantest.KeySpec{RSABits: 2048}
	p256    = swantest.KeySpec{Curve: elliptic.P256()}
	p384    = swantest.KeySpec{Curve: elliptic.P384()}
)

// newRoot makes a root CA (ECDSA: quick to make) valid around t0.
func newRoot(t *testing.T, name string) *swantest.CA {
	return swantest.NewRootCA(t, name, p256, swantest.Around(t0))
}

// leafFor issues a certificate naming id (in its subjectAltName, or as
// its subject for a DN; a DN identity's Name is filled in).
func leafFor(t *testing.T, ca *swantest.CA, id *ike.Identity, key swantest.KeySpec, v swantest.Validity) *ike.Certificates {
	s := swantest.LeafSpec{CommonName: id.Name, Key: key, Validity: v}
	switch id.Kind {
	case ike.IDFQDN:
		s.DNSNames = []string{id.Name}
	case ike.IDUserFQDN:
		s.Emails = []string{id.Name}
	case ike.IDAddress:
		s.IPs = []netip.Addr{id.Addr}
		s.CommonName = id.Addr.String()
	case ike.IDDN:
		s.CommonName = "dn.example.net"
	}
	c, k := ca.Issue(t, s)
	if id.Kind == ike.IDDN {
		id.Name = string(c.RawSubject)
	}
	return &ike.Certificates{Chain: ca.Chain(c), Key: k}
}

// certConfig is one side of a certificate pair: one policy with the
// method of the key, the certificates, the trusted CAs.
func certConfig(clk *clocktest.Fake, certs *ike.Certificates, trusted ...*swantest.CA) ike.Config {
	auth := ike.AuthECDSASig
	if _, ok := certs.Key.Public().(*rsa.PublicKey); ok {
		auth = ike.AuthRSASig
	}
	c := pairConfig(clk, ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: auth, Group: 19})
	c.PreSharedKeys = nil
	for _, ca := range trusted {
		certs.CAs = append(certs.CAs, ca.Cert)
	}
	c.Certificates = certs
	return c
}

// certTunnels gives each side a tunnel to the other with the identities.
func certTunnels(t *testing.T, ca, cb *ike.Config, a, b ike.Identity) {
	ta := pairTunnel(t, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")
	tb := pairTunnel(t, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")
	ta.LocalID, ta.RemoteID, tb.LocalID, tb.RemoteID = a, b, b, a
	ca.Tunnels, cb.Tunnels = []ike.Tunnel{ta}, []ike.Tunnel{tb}
}

// schemes returns the signature schemes an SA used and verified.
func (s *side) schemes(t *testing.T) (own, peer sigScheme) {
	sa := onlyIKESA(t, s)
	sa.lock()
	defer sa.mu.Unlock()
	if sa.schemes == nil {
		return sigScheme{}, sigScheme{}
	}
	return sa.schemes.own, sa.schemes.peer
}

// wireLog records every datagram on a pair's wire.
type wireLog struct {
	mu   sync.Mutex
	msgs []datagramSent
	drop func(from netip.Addr, b []byte) bool // nil: deliver everything
}

type datagramSent struct {
	from netip.Addr
	b    []byte
}

// record installs the log as the wire's filter.
func (p *pair) record() *wireLog {
	l := &wireLog{}
	p.w.SetFilter(func(local, remote netip.AddrPort, msg []byte) []byte {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.msgs = append(l.msgs, datagramSent{local.Addr(), append([]byte(nil), msg...)})
		if l.drop != nil && l.drop(local.Addr(), msg) {
			return nil
		}
		return msg
	})
	return l
}

func (l *wireLog) setDrop(f func(from netip.Addr, b []byte) bool) {
	l.mu.Lock()
	l.drop = f
	l.mu.Unlock()
}

// sent returns the datagrams from an address.
func (l *wireLog) sent(from netip.Addr) [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]byte
	for _, m := range l.msgs {
		if m.from == from {
			out = append(out, m.b)
		}
	}
	return out
}

// decode decrypts the encrypted messages from an address with the
// receiving side's keys, fragments put together by message ID (the first
// peerSK returns the protection of the messages s's only IKE SA
// receives, to decode its peer's messages with.
func peerSK(t *testing.T, s *side) *skCrypto {
	t.Helper()
	sa := onlyIKESA(t, s)
	sa.lock()
	defer sa.unlock()
	c := sa.opener(false)
	return &c
}

// complete set of each), in message ID order.
func (l *wireLog) decode(t *testing.T, from netip.Addr, c *skCrypto) []*Message {
	t.Helper()
	var out []*Message
	type key struct {
		id   uint32
		resp bool
	}
	frags := map[key]map[int][]byte{}
	totals := map[key]int{}
	next := map[key]PayloadType{}
	done := map[key]bool{}
	for _, b := range l.sent(from) {
		m, err := ParseMessage(b)
		if err != nil || m.Exchange == IKESAInit {
			continue
		}
		k := key{m.MessageID, m.IsResponse()}
		if done[k] {
			continue
		}
		if !isFragment(m) {
			if err := c.openMessage(b, m); err != nil {
				t.Fatalf("message %d does not open: %v", m.MessageID, err)
			}
			out = append(out, m)
			done[k] = true
			continue
		}
		num, total, skf, err := parseFragment(m)
		if err != nil {
			t.Fatalf("fragment: %v", err)
		}
		plain, err := c.decrypt(b, skf.Body[fragHeaderSize:])
		if err != nil {
			t.Fatalf("fragment %d of message %d does not open: %v", num, m.MessageID, err)
		}
		if totals[k] != total {
			frags[k], totals[k] = map[int][]byte{}, total
		}
		frags[k][num] = plain
		if num == 1 {
			next[k] = skf.Inner
		}
		if len(frags[k]) == total {
			var all []byte
			for i := 1; i <= total; i++ {
				all = append(all, frags[k][i]...)
			}
			inner, err := parsePayloads(next[k], all, false)
			if err != nil {
				t.Fatalf("reassembled message %d: %v", m.MessageID, err)
			}
			h := m.Header
			out = append(out, &Message{Header: h, Payloads: inner})
			done[k] = true
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].MessageID < out[j].MessageID })
	return out
}

// exchange returns the first decoded message of an exchange.
func exchange(t *testing.T, ms []*Message, e ExchangeType) *Message {
	t.Helper()
	for _, m := range ms {
		if m.Exchange == e {
			return m
		}
	}
	t.Fatalf("no %v message", e)
	return nil
}

// logBuffer collects a daemon's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logTo sends a configuration's logs, debug included, to a buffer.
func logTo(c *ike.Config) *logBuffer {
	b := &logBuffer{}
	c.Logger = slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return b
}

// logToTest is logTo, with the log written to the test's when it fails.
func logToTest(t *testing.T, c *ike.Config) *logBuffer {
	b := logTo(c)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ISM log:\n%s", b.String())
		}
	})
	return b
}
