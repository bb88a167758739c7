package trap

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/ism/config"
)

// syncBuffer is a bytes.Buffer safe for the sender goroutines' logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestCloseZeroesSecrets checks that Close overwrites the copy of the
// community and the localized USM keys.
func TestCloseZeroesSecrets(t *testing.T) {
	cfg := parseSNMP(t, `snmp-server engine-id 0x80007ed9050102030405
snmp-server host 127.0.0.1 udp-port 1162 version 2c community zero-me-community
snmp-server host 127.0.0.1 udp-port 1163 version 3 user ops auth sha "auth password" priv des "priv password"
`)
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	comm, usm := s.receivers[0].community, s.receivers[1].usm
	if string(comm) != "zero-me-community" || len(usm.SecretKey) != 20 || len(usm.PrivacyKey) == 0 {
		t.Fatalf("before Close: community %d bytes, auth key %d bytes, priv key %d bytes", len(comm), len(usm.SecretKey), len(usm.PrivacyKey))
	}
	if usm.AuthenticationPassphrase != "" || usm.PrivacyPassphrase != "" {
		t.Error("the passphrases are kept after the keys were localized")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"community": comm, "auth key": usm.SecretKey, "priv key": usm.PrivacyKey} {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("%s not zeroed after Close", name)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestDisabledNotQueued checks that a trap kind left out of "snmp-server
// enable traps" is never queued, and that an enabled one is.
func TestDisabledNotQueued(t *testing.T) {
	cfg := parseSNMP(t, `snmp-server host 127.0.0.1 version 2c community public-ism
snmp-server enable traps failover
`)
	s, err := newSender(cfg, nil, options{queueLen: 8, now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := netip.MustParseAddr("192.0.2.1")
	s.TunnelUp("t", a)
	s.TunnelDown("t", a, "r")
	s.IKEFailure("t", a, "r")
	s.PeerDead("t", a, time.Now())
	if n := len(s.receivers[0].q); n != 0 {
		t.Errorf("%d disabled traps queued", n)
	}
	s.Failover("t", a, a, "r")
	if n := len(s.receivers[0].q); n != 1 {
		t.Errorf("%d failover traps queued, want 1", n)
	}
}

// TestAfterCloseDropped checks that traps posted after Close are counted
// as dropped, without a panic.
func TestAfterCloseDropped(t *testing.T) {
	cfg := parseSNMP(t, "snmp-server host 127.0.0.1 version 2c community public-ism\n")
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.TunnelUp("t", netip.MustParseAddr("192.0.2.1"))
	if st := s.Stats()[0]; st.Dropped != 1 || st.Sent != 0 {
		t.Errorf("stats %v: want dropped 1 sent 0", st)
	}
}

// TestNilSender checks that a nil Sender (no SNMP configured) is inert.
func TestNilSender(t *testing.T) {
	var s *Sender
	a := netip.MustParseAddr("192.0.2.1")
	s.TunnelUp("t", a)
	s.TunnelDown("t", a, "r")
	s.IKEFailure("t", a, "r")
	s.PeerDead("t", a, time.Now())
	s.Failover("t", a, a, "r")
	if s.Enabled(config.TrapDPD) || s.Stats() != nil || s.EngineID() != nil || s.Close() != nil {
		t.Error("a nil Sender is not inert")
	}
}

// TestNewErrors checks that a community gosnmp cannot encode is refused
// with an error that does not print it.
func TestNewErrors(t *testing.T) {
	long := strings.Repeat("c", 128)
	cfg := parseSNMP(t, "snmp-server host 127.0.0.1 version 2c community "+long+"\n")
	_, err := New(cfg, nil)
	if err == nil {
		t.Fatal("a 128-character community was accepted")
	}
	if strings.Contains(err.Error(), long) {
		t.Errorf("the error prints the community: %v", err)
	}
}

// TestEngineIDFormat checks the derived engine ID against RFC 3411 §5:
// the enterprise number with the top bit set, format 5, 12 octets; stable
// for a host, different between hosts.
func TestEngineIDFormat(t *testing.T) {
	if !strings.HasSuffix(EnterpriseOID, "."+strconv.Itoa(enterpriseNumber)) {
		t.Errorf("EnterpriseOID %s does not end in the enterprise number %d", EnterpriseOID, enterpriseNumber)
	}
	a := engineIDFrom("0123456789abcdef0123456789abcdef")
	if len(a) != 17 || !bytes.Equal(a[:5], []byte{0x80, 0x00, 0x7e, 0xd9, 0x05}) {
		t.Errorf("engine ID %x: want 80007ed905 and 12 octets", a)
	}
	if b := engineIDFrom("0123456789abcdef0123456789abcdef"); !bytes.Equal(a, b) {
		t.Error("the engine ID of one host changed")
	}
	if b := engineIDFrom("fedcba9876543210fedcba9876543210"); bytes.Equal(a, b) {
		t.Error("two hosts have one engine ID")
	}
	d1, err := DeriveEngineID()
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := DeriveEngineID(); !bytes.Equal(d1, d2) {
		t.Error("DeriveEngineID is not stable")
	}
}

// TestEngineBootsAndTime checks the bounds of snmpEngineBoots and
// snmpEngineTime (RFC 3414 §2.2.2) and that boots grow with the clock.
func TestEngineBootsAndTime(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	if engineBoots(now.Add(time.Minute)) != engineBoots(now)+1 {
		t.Error("boots do not grow by one a minute")
	}
	if b := engineBoots(time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)); b != 1 {
		t.Errorf("boots before the epoch = %d, want 1", b)
	}
	if b := engineBoots(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)); b != 1<<31-2 {
		t.Errorf("boots far ahead = %d, want %d", b, 1<<31-2)
	}
	if s := engineTime(now, now.Add(90*time.Second+time.Millisecond)); s != 90 {
		t.Errorf("engine time = %d, want 90", s)
	}
	if s := engineTime(now, now.Add(-time.Hour)); s != 0 {
		t.Errorf("engine time before start = %d, want 0", s)
	}
}

// TestValues checks the encodings of addresses (RFC 4001), DateAndTime
// (RFC 2579) and the DisplayString bound.
func TestValues(t *testing.T) {
	for _, c := range []struct {
		in    string
		typ   int
		octet []byte
	}{
		{"192.0.2.1", 1, []byte{192, 0, 2, 1}},
		{"::ffff:198.51.100.7", 1, []byte{198, 51, 100, 7}},
		{"2001:db8::1%eth0", 2, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
	} {
		typ, b := inetAddress(netip.MustParseAddr(c.in))
		if typ != c.typ || !bytes.Equal(b, c.octet) {
			t.Errorf("inetAddress(%s) = %d % x, want %d % x", c.in, typ, b, c.typ, c.octet)
		}
	}
	if typ, b := inetAddress(netip.Addr{}); typ != 0 || len(b) != 0 {
		t.Errorf("inetAddress(zero) = %d % x, want unknown and no octets", typ, b)
	}
	// 2026-11-27,8:59:24.3 in UTC+1 is 7:59:24.3 UTC.
	at := time.Date(2026, 11, 27, 8, 59, 24, 399_000_000, time.FixedZone("x", 3600))
	if got, want := dateAndTime(at), []byte{0x07, 0xea, 11, 27, 7, 59, 24, 3, '+', 0, 0}; !bytes.Equal(got, want) {
		t.Errorf("dateAndTime = % x, want % x", got, want)
	}
	long := strings.Repeat("a", 254) + "é" // é is 2 octets: 256 in all
	if got := displayString(long); len(got) != 254 {
		t.Errorf("displayString cut %d octets to %d, want 254", len(long), len(got))
	}
}
