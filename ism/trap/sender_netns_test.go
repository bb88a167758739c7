package trap

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/ism/config"
)

// parseSNMP parses configuration lines and returns their SNMP settings.
func parseSNMP(t *testing.T, text string) config.SNMP {
	t.Helper()
	c, err := config.Parse("test.conf", strings.NewReader(text))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return c.SNMP
}

// senderIn makes a Sender whose sockets live in namespace ns; started
// says whether its goroutines run.
func senderIn(t *testing.T, ns string, cfg config.SNMP, o options, started bool) *Sender {
	t.Helper()
	if o.now == nil {
		o.now = time.Now
	}
	if o.queueLen == 0 {
		o.queueLen = QueueLen
	}
	var s *Sender
	var err error
	inNetns(t, ns, func() { s, err = newSender(cfg, nil, o) })
	if err != nil {
		t.Fatalf("newSender: %v", err)
	}
	if started {
		s.startSending()
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// want is an expected varbind: octets for an octet string, or num for
// an INTEGER.
type want struct {
	oid    string
	octets []byte
	num    int64
	isNum  bool
}

func octs(oid string, b []byte) want        { return want{oid: oid, octets: b} }
func str(oid, s string) want                { return want{oid: oid, octets: []byte(s)} }
func integer(oid string, n int64) want      { return want{oid: oid, num: n, isNum: true} }
func ipv4(oid string, a, b, c, d byte) want { return octs(oid, []byte{a, b, c, d}) }

// The OIDs as the MIB numbers them, written out rather than taken from the
// code under test.
const (
	wantTunnelUp    = "1.3.6.1.4.1.32473.1.0.1"
	wantTunnelDown  = "1.3.6.1.4.1.32473.1.0.2"
	wantIKEFailure  = "1.3.6.1.4.1.32473.1.0.3"
	wantDPDPeerDead = "1.3.6.1.4.1.32473.1.0.4"
	wantFailover    = "1.3.6.1.4.1.32473.1.0.5"
	wantOwnership   = "1.3.6.1.4.1.32473.1.0.6"
	wantName        = "1.3.6.1.4.1.32473.1.1.1.0"
	wantDestType    = "1.3.6.1.4.1.32473.1.1.2.0"
	wantDest        = "1.3.6.1.4.1.32473.1.1.3.0"
	wantReason      = "1.3.6.1.4.1.32473.1.1.4.0"
	wantDetectedAt  = "1.3.6.1.4.1.32473.1.1.5.0"
	wantFromType    = "1.3.6.1.4.1.32473.1.1.6.0"
	wantFrom        = "1.3.6.1.4.1.32473.1.1.7.0"
	wantToType      = "1.3.6.1.4.1.32473.1.1.8.0"
	wantTo          = "1.3.6.1.4.1.32473.1.1.9.0"
	wantGroup       = "1.3.6.1.4.1.32473.1.1.10.0"
	wantNode        = "1.3.6.1.4.1.32473.1.1.11.0"
	wantEvent       = "1.3.6.1.4.1.32473.1.1.12.0"
)

// checkTrap checks a decoded trap: sysUpTime.0 and snmpTrapOID.0 first
// (RFC 3416 §4.2.6), then exactly the expected varbinds.
func checkTrap(t *testing.T, r received, notification string, vars ...want) {
	t.Helper()
	if len(r.vars) != 2+len(vars) {
		t.Errorf("%s %s: %d varbinds, want %d: %+v", r.principal, notification, len(r.vars), 2+len(vars), r.vars)
		return
	}
	if v := r.vars[0]; v.oid != "1.3.6.1.2.1.1.3.0" || v.typ != "Timeticks" {
		t.Errorf("%s: varbind 1 is %s %s, want sysUpTime.0 Timeticks", r.principal, v.oid, v.typ)
	}
	if v := r.vars[1]; v.oid != "1.3.6.1.6.3.1.1.4.1.0" || v.typ != "OID" || v.value != notification {
		t.Errorf("%s: varbind 2 is %s %s %s, want snmpTrapOID.0 OID %s", r.principal, v.oid, v.typ, v.value, notification)
	}
	for i, w := range vars {
		v := r.vars[2+i]
		switch {
		case v.oid != w.oid:
			t.Errorf("%s %s varbind %d: OID %s, want %s", r.principal, notification, 3+i, v.oid, w.oid)
		case w.isNum && (v.typ != "INTEGER" || v.num != w.num):
			t.Errorf("%s %s %s: %s %d, want INTEGER %d", r.principal, notification, v.oid, v.typ, v.num, w.num)
		case !w.isNum && (v.typ != "Hex-STRING" || !bytes.Equal(v.octets, w.octets)):
			t.Errorf("%s %s %s: %s % x, want octets % x", r.principal, notification, v.oid, v.typ, v.octets, w.octets)
		}
	}
}

// TestTrapsReachSnmptrapd sends every trap kind to snmptrapd over SNMPv2c
// (IPv4 and IPv6) and SNMPv3 at every security level and protocol the
// configuration offers, with a derived engine ID, and checks what snmptrapd
// decoded, varbind by varbind.
func TestTrapsReachSnmptrapd(t *testing.T) {
	lab := netlab.New(t)
	ns := lab.NS("trap")
	engineID, err := DeriveEngineID()
	if err != nil {
		t.Fatal(err)
	}
	users := []trapdUser{
		{name: "watcher"},
		{name: "md5user", auth: "MD5", authPass: "md5 auth password"},
		{name: "shaaes", auth: "SHA", authPass: "sha auth password", priv: "AES", privPass: "aes priv password"},
		{name: "sha256aes", auth: "SHA-256", authPass: "sha256 auth password", priv: "AES", privPass: "aes128 priv password"},
		{name: "md5des", auth: "MD5", authPass: "md5 auth password2", priv: "DES", privPass: "des priv password"},
	}
	d := startTrapd(t, lab, ns, engineID, []string{"v4-community", "v6-community"}, users,
		"udp:127.0.0.1:1162", "udp:127.0.0.1:1163", "udp:127.0.0.1:1164", "udp:127.0.0.1:1165",
		"udp:127.0.0.1:1166", "udp:127.0.0.1:1167", "udp6:[::1]:1168")
	cfg := parseSNMP(t, `snmp-server host 127.0.0.1 udp-port 1162 version 2c community v4-community
snmp-server host 127.0.0.1 udp-port 1163 version 3 user watcher
snmp-server host 127.0.0.1 udp-port 1164 version 3 user md5user auth md5 "md5 auth password"
snmp-server host 127.0.0.1 udp-port 1165 version 3 user shaaes auth sha "sha auth password" priv aes "aes priv password"
snmp-server host 127.0.0.1 udp-port 1166 version 3 user sha256aes auth sha256 "sha256 auth password" priv aes "aes128 priv password"
snmp-server host 127.0.0.1 udp-port 1167 version 3 user md5des auth md5 "md5 auth password2" priv des "des priv password"
snmp-server host ::1 udp-port 1168 version 2c community v6-community
`)
	s := senderIn(t, ns, cfg, options{}, true)
	if !bytes.Equal(s.EngineID(), engineID) {
		t.Fatalf("EngineID() = %x, want the derived %x", s.EngineID(), engineID)
	}

	detected := time.Date(2026, 11, 27, 8, 59, 24, 300_000_000, time.UTC)
	s.TunnelUp("branch1", netip.MustParseAddr("192.0.2.1"))
	s.TunnelDown("branch1", netip.MustParseAddr("192.0.2.1"), "administratively down")
	s.IKEFailure("branch2", netip.MustParseAddr("2001:db8::2"), "no proposal chosen")
	s.PeerDead("branch1", netip.MustParseAddr("198.51.100.7"), detected)
	s.Failover("branch1", netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.9"), "dpd: peer dead")
	s.ClusterOwnership("east", "gw2", "acquired", "failover from gw1 in 2.1s")

	principals := map[string]string{
		"v4-community": "v2c", "v6-community": "v2c",
		"watcher": "v3", "md5user": "v3", "shaaes": "v3", "sha256aes": "v3", "md5des": "v3",
	}
	for p := range principals {
		d.waitTraps(t, p, 6)
	}
	all := d.traps(t)
	if len(all) != 6*len(principals) {
		t.Errorf("snmptrapd decoded %d traps, want %d", len(all), 6*len(principals))
	}
	v6 := []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02}
	// DateAndTime 2026-11-27,8:59:24.3,+0:0 (RFC 2579 §2).
	when := []byte{0x07, 0xea, 11, 27, 8, 59, 24, 3, '+', 0, 0}
	for p, version := range principals {
		got := from(all, p)
		if len(got) != 6 {
			t.Errorf("%s: %d traps, want 6", p, len(got))
			continue
		}
		for _, r := range got {
			if r.version != version {
				t.Errorf("%s: version %s, want %s", p, r.version, version)
			}
		}
		checkTrap(t, got[0], wantTunnelUp, str(wantName, "branch1"), integer(wantDestType, 1), ipv4(wantDest, 192, 0, 2, 1))
		checkTrap(t, got[1], wantTunnelDown, str(wantName, "branch1"), integer(wantDestType, 1), ipv4(wantDest, 192, 0, 2, 1),
			str(wantReason, "administratively down"))
		checkTrap(t, got[2], wantIKEFailure, str(wantName, "branch2"), integer(wantDestType, 2), octs(wantDest, v6),
			str(wantReason, "no proposal chosen"))
		checkTrap(t, got[3], wantDPDPeerDead, str(wantName, "branch1"), integer(wantDestType, 1), ipv4(wantDest, 198, 51, 100, 7),
			octs(wantDetectedAt, when))
		checkTrap(t, got[4], wantFailover, str(wantName, "branch1"), integer(wantFromType, 1), ipv4(wantFrom, 198, 51, 100, 7),
			integer(wantToType, 1), ipv4(wantTo, 203, 0, 113, 9), str(wantReason, "dpd: peer dead"))
		checkTrap(t, got[5], wantOwnership, str(wantGroup, "east"), str(wantNode, "gw2"), str(wantEvent, "acquired"),
			str(wantReason, "failover from gw1 in 2.1s"))
		for i := 1; i < len(got); i++ {
			if got[i].vars[0].num < got[i-1].vars[0].num {
				t.Errorf("%s: sysUpTime went back from %d to %d", p, got[i-1].vars[0].num, got[i].vars[0].num)
			}
		}
	}
	for _, st := range s.Stats() {
		if st.Sent != 6 || st.Dropped != 0 || st.Errors != 0 {
			t.Errorf("stats %v: want sent 6 dropped 0 errors 0", st)
		}
	}
}

// TestWrongSecretsRejected shows that snmptrapd is a real judge: a trap
// with a wrong auth password, a wrong priv password or a wrong community
// is not decoded, while the same trap with the right ones is. Each goes to
// the same port, one after the other, so the right one, decoded last,
// proves the wrong ones were read first.
func TestWrongSecretsRejected(t *testing.T) {
	lab := netlab.New(t)
	ns := lab.NS("trap")
	engineID := []byte{0x80, 0x00, 0x7e, 0xd9, 0x05, 1, 2, 3, 4, 5, 6, 7, 8}
	d := startTrapd(t, lab, ns, engineID, []string{"right-community"}, []trapdUser{
		{name: "md5user", auth: "MD5", authPass: "right auth password"},
		{name: "shaaes", auth: "SHA", authPass: "right auth password", priv: "AES", privPass: "right priv password"},
	}, "udp:127.0.0.1:1162")
	const engine = "snmp-server engine-id 0x80007ed9050102030405060708\n"
	cases := []struct {
		name, host, principal, rejected string
	}{
		{"wrong auth password", `version 3 user md5user auth md5 "wrong auth password"`, "md5user", "Authentication failed for md5user"},
		{"wrong priv password", `version 3 user shaaes auth sha "right auth password" priv aes "wrong priv password"`, "shaaes", "error parsing ScopedPDU"},
		{"wrong community", `version 2c community wrong-community`, "wrong-community", ""},
	}
	send := func(host string) {
		t.Helper()
		s := senderIn(t, ns, parseSNMP(t, engine+"snmp-server host 127.0.0.1 udp-port 1162 "+host+"\n"), options{}, true)
		s.TunnelUp("branch1", netip.MustParseAddr("192.0.2.1"))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats()[0]; st.Sent != 1 {
			t.Fatalf("stats %v: want sent 1", st)
		}
	}
	for i, c := range cases {
		send(c.host)
		if c.rejected != "" {
			d.waitLog(t, c.name, func(log string) bool { return strings.Count(log, c.rejected) == 1 })
		}
		send(`version 2c community right-community`) // the barrier
		all := d.waitTraps(t, "right-community", i+1)
		if got := from(all, c.principal); len(got) != 0 {
			t.Errorf("%s: snmptrapd decoded %d traps: %+v", c.name, len(got), got)
		}
	}
	// The same traps with the right secrets are decoded.
	send(`version 3 user md5user auth md5 "right auth password"`)
	send(`version 3 user shaaes auth sha "right auth password" priv aes "right priv password"`)
	d.waitTraps(t, "md5user", 1)
	all := d.waitTraps(t, "shaaes", 1)
	for _, p := range []string{"md5user", "shaaes"} {
		checkTrap(t, from(all, p)[0], wantTunnelUp, str(wantName, "branch1"), integer(wantDestType, 1), ipv4(wantDest, 192, 0, 2, 1))
	}
}

// TestDisabledTrapsNotSent enables two kinds and posts all five: only the
// two reach snmptrapd, in order.
func TestDisabledTrapsNotSent(t *testing.T) {
	lab := netlab.New(t)
	ns := lab.NS("trap")
	d := startTrapd(t, lab, ns, nil, []string{"public-ism"}, nil, "udp:127.0.0.1:162")
	cfg := parseSNMP(t, `snmp-server host 127.0.0.1 version 2c community public-ism
snmp-server enable traps tunnel-down dpd
`)
	s := senderIn(t, ns, cfg, options{}, true)
	for _, k := range config.AllTraps() {
		if want := k == config.TrapTunnelDown || k == config.TrapDPD; s.Enabled(k) != want {
			t.Errorf("Enabled(%s) = %v, want %v", k, !want, want)
		}
	}
	a := netip.MustParseAddr("192.0.2.1")
	s.TunnelUp("branch1", a)
	s.IKEFailure("branch1", a, "timeout")
	s.TunnelDown("branch1", a, "dpd")
	s.Failover("branch1", a, netip.MustParseAddr("192.0.2.2"), "dpd")
	s.PeerDead("branch1", a, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	// One queue and one socket keep the order: once the last enabled trap
	// is decoded, every earlier one has been.
	d.waitLog(t, "the dpd trap", func(log string) bool { return strings.Contains(log, wantDPDPeerDead) })
	all := d.traps(t)
	if len(all) != 2 {
		t.Fatalf("snmptrapd decoded %d traps, want 2: %+v", len(all), all)
	}
	if all[0].vars[1].value != wantTunnelDown || all[1].vars[1].value != wantDPDPeerDead {
		t.Errorf("decoded %s and %s, want tunnel down and DPD", all[0].vars[1].value, all[1].vars[1].value)
	}
	if st := s.Stats()[0]; st.Sent != 2 || st.Dropped != 0 {
		t.Errorf("stats %v: want sent 2 dropped 0", st)
	}
}

// TestFullQueueDrops fills a receiver's queue before its goroutine starts:
// the traps past the bound are dropped and counted, the rest delivered.
func TestFullQueueDrops(t *testing.T) {
	lab := netlab.New(t)
	ns := lab.NS("trap")
	d := startTrapd(t, lab, ns, nil, []string{"public-ism"}, nil, "udp:127.0.0.1:162")
	cfg := parseSNMP(t, "snmp-server host 127.0.0.1 version 2c community public-ism\n")
	s := senderIn(t, ns, cfg, options{queueLen: 3}, false)
	a := netip.MustParseAddr("192.0.2.1")
	for i := 1; i <= 5; i++ {
		s.TunnelUp("tunnel"+string(rune('0'+i)), a)
	}
	if st := s.Stats()[0]; st.Dropped != 2 || st.Sent != 0 {
		t.Fatalf("stats %v: want dropped 2 sent 0", st)
	}
	s.startSending()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats()[0].Sent < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	s.TunnelUp("tunnel6", a)
	d.waitLog(t, "tunnel6", func(log string) bool { return strings.Contains(log, "74 75 6E 6E 65 6C 36") })
	var names []string
	for _, r := range d.traps(t) {
		names = append(names, string(r.vars[2].octets))
	}
	if want := []string{"tunnel1", "tunnel2", "tunnel3", "tunnel6"}; !slices.Equal(names, want) {
		t.Errorf("snmptrapd decoded %q, want %q", names, want)
	}
	if st := s.Stats()[0]; st.Sent != 4 || st.Dropped != 2 || st.Errors != 0 {
		t.Errorf("stats %v: want sent 4 dropped 2 errors 0", st)
	}
}

// TestEngineBootsAcrossRestarts checks the wall-clock engineBoots against
// snmptrapd's timeliness check (RFC 3414 §3.2 step 7): a restarted sender
// (a later minute) is accepted, while one whose boots went back is refused,
// which shows the check is real.
func TestEngineBootsAcrossRestarts(t *testing.T) {
	lab := netlab.New(t)
	ns := lab.NS("trap")
	engineID := []byte{0x80, 0x00, 0x7e, 0xd9, 0x05, 8, 7, 6, 5, 4, 3, 2, 1}
	d := startTrapd(t, lab, ns, engineID, nil, []trapdUser{
		{name: "shaaes", auth: "SHA", authPass: "right auth password", priv: "AES", privPass: "right priv password"},
	}, "udp:127.0.0.1:1162")
	cfg := parseSNMP(t, `snmp-server engine-id 0x80007ed9050807060504030201
snmp-server host 127.0.0.1 udp-port 1162 version 3 user shaaes auth sha "right auth password" priv aes "right priv password"
`)
	send := func(offset time.Duration, tunnel string) {
		t.Helper()
		s := senderIn(t, ns, cfg, options{now: func() time.Time { return time.Now().Add(offset) }}, true)
		s.TunnelUp(tunnel, netip.MustParseAddr("192.0.2.1"))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	send(0, "first")
	d.waitTraps(t, "shaaes", 1)
	// snmptrapd drops a trap outside the time window without a word;
	// the next one on the same socket shows it was read.
	send(-10*time.Minute, "boots-back")
	send(2*time.Minute, "restarted")
	all := d.waitTraps(t, "shaaes", 2)
	var names []string
	for _, r := range all {
		names = append(names, string(r.vars[2].octets))
	}
	if want := []string{"first", "restarted"}; !slices.Equal(names, want) {
		t.Errorf("snmptrapd decoded %q, want %q", names, want)
	}
}

// TestSecretsNeverLogged makes every send fail (the receivers have no route
// in a namespace with only loopback) and checks that the community and the
// passwords appear in no log line, stats output or error, that the errors
// are counted, and that their logging is rate-limited. It also shows that
// a receiver unreachable at start-up does not stop New.
func TestSecretsNeverLogged(t *testing.T) {
	lab := netlab.New(t)
	ns := lab.NS("trap")
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	secrets := []string{"secret-community-x", "secret auth pass", "secret priv pass"}
	cfg := parseSNMP(t, `snmp-server engine-id 0x80007ed9050102030405
snmp-server host 192.0.2.10 version 2c community secret-community-x
snmp-server host 2001:db8::10 version 3 user ops auth sha256 "secret auth pass" priv aes "secret priv pass"
`)
	var s *Sender
	var err error
	inNetns(t, ns, func() { s, err = New(cfg, log) })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg.Hosts[0].Community.Zero() // the Sender keeps its own copies
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.TunnelDown("branch1", netip.MustParseAddr("192.0.2.1"), "test")
		st := s.Stats()
		if st[0].Errors >= 3 && st[1].Errors >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no send errors counted: %v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("log:\n%s", buf.String())
	out := buf.String() + fmt.Sprintf("%v %+v %#v", s.Stats(), s.Stats(), s.Stats())
	for _, sec := range secrets {
		if strings.Contains(out, sec) {
			t.Errorf("%q appears in the output:\n%s", sec, out)
		}
	}
	// Every receiver failed at least 3 times, and logged it once.
	if n := strings.Count(buf.String(), `"trap not sent"`); n != 2 {
		t.Errorf("%d send errors logged, want 2 (one per receiver, rate-limited):\n%s", n, buf.String())
	}
	for _, st := range s.Stats() {
		if st.Sent+st.Errors+st.Dropped == 0 || st.Errors < 3 {
			t.Errorf("stats %v: want errors counted", st)
		}
	}
}
