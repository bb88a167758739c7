package trap

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/netns"
)

// trapd is a net-snmp snmptrapd, the judge of the traps: it runs in its own
// network namespace with its own configuration, persistent directory and
// pid file, prints every trap it decodes as one line, and is killed by pid
// when the test ends (netlab).
type trapd struct {
	ns  string
	log string
}

// trapdUser is an SNMPv3 user of snmptrapd; auth and priv are net-snmp's
// protocol names ("MD5", "SHA", "SHA-256", "DES", "AES"), "" for none.
type trapdUser struct {
	name, auth, authPass, priv, privPass string
}

// trapFormat prints a trap as TRAP|security|transport|varbind~varbind...
// (snmptrapd.conf(5): %P security information, %b transport address, %V
// the varbind separator, %v the varbinds).
const trapFormat = `TRAP|%P|%b|%V~%v\n`

// startTrapd starts snmptrapd in namespace ns, listening on listen
// (net-snmp transport specifiers), accepting the communities and the users
// of engineID, and waits until it has started.
func startTrapd(t *testing.T, lab *netlab.Lab, ns string, engineID []byte, communities []string, users []trapdUser, listen ...string) *trapd {
	t.Helper()
	if _, err := exec.LookPath("snmptrapd"); err != nil {
		t.Fatalf("snmptrapd (Debian package snmptrapd, `make deps`) is required: %v", err)
	}
	dir := t.TempDir()
	var conf strings.Builder
	for _, c := range communities {
		fmt.Fprintf(&conf, "authCommunity log %s\n", c)
	}
	for _, u := range users {
		fmt.Fprintf(&conf, "createUser -e 0x%x %s", engineID, u.name)
		level := "noauth"
		if u.auth != "" {
			fmt.Fprintf(&conf, " %s %q", u.auth, u.authPass)
			level = "auth"
		}
		if u.priv != "" {
			fmt.Fprintf(&conf, " %s %q", u.priv, u.privPass)
			level = "priv"
		}
		fmt.Fprintf(&conf, "\nauthUser log %s %s\n", u.name, level)
	}
	conf.WriteString("format2 " + trapFormat + "\n")
	// Print each octet string on one line (snmp.conf(5)).
	conf.WriteString("[snmp] hexOutputLength 0\n")
	confPath := filepath.Join(dir, "snmptrapd.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &trapd{ns: ns, log: filepath.Join(dir, "trapd.log")}
	// -f foreground, -C no other configuration files, -n no DNS,
	// -On numeric OIDs, -Ox octet strings in hex, no MIBs.
	args := append([]string{"snmptrapd", "-f", "-C", "-c", confPath, "-Lf", d.log, "-n",
		"-On", "-Ox", "-p", filepath.Join(dir, "snmptrapd.pid"), "-M", dir, "-m", ""}, listen...)
	cmd := lab.Command(ns, args...)
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+filepath.Join(dir, "persist"), "SNMPCONFPATH="+dir)
	out, err := os.Create(filepath.Join(dir, "trapd.out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	cmd.Stdout, cmd.Stderr = out, out
	lab.Start(cmd)
	d.waitLog(t, "snmptrapd start", func(log string) bool { return strings.Contains(log, "NET-SNMP version") })
	return d
}

// logText returns what snmptrapd has logged so far.
func (d *trapd) logText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(d.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// waitLog waits until ok holds for the log, for at most 10 seconds.
func (d *trapd) waitLog(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := d.logText(t)
		if ok(log) {
			return log
		}
		if time.Now().After(deadline) {
			t.Fatalf("snmptrapd: timed out waiting for %s; its log:\n%s", what, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// traps returns the traps snmptrapd decoded.
func (d *trapd) traps(t *testing.T) []received {
	t.Helper()
	return parseTraps(t, d.logText(t))
}

// waitTraps waits until snmptrapd has decoded at least n traps from
// principal (a community or a user), and returns all it decoded.
func (d *trapd) waitTraps(t *testing.T, principal string, n int) []received {
	t.Helper()
	var all []received
	d.waitLog(t, fmt.Sprintf("%d traps from %s", n, principal), func(log string) bool {
		all = parseTraps(t, log)
		return len(from(all, principal)) >= n
	})
	return all
}

// received is one trap as snmptrapd printed it.
type received struct {
	version   string // "v2c" or "v3"
	principal string // the community (v2c) or the user (v3)
	vars      []varbind
}

// varbind is one variable binding: its OID without the leading dot, its
// net-snmp type name, and its value (octets for Hex-STRING, the number for
// INTEGER and Timeticks, the OID for OID).
type varbind struct {
	oid, typ string
	octets   []byte
	num      int64
	value    string
}

// from returns the traps of principal.
func from(all []received, principal string) []received {
	var out []received
	for _, r := range all {
		if r.principal == principal {
			out = append(out, r)
		}
	}
	return out
}

// parseTraps parses the lines of trapFormat in snmptrapd's log.
func parseTraps(t *testing.T, log string) []received {
	t.Helper()
	var out []received
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "TRAP|") {
			continue
		}
		f := strings.SplitN(line, "|", 4)
		if len(f) != 4 {
			t.Fatalf("snmptrapd line %q: want 4 fields", line)
		}
		// %P: "TRAP2, SNMP v2c, community C" or "TRAP2, SNMP v3, user U, context X".
		sec := strings.Split(f[1], ", ")
		if len(sec) < 3 || sec[0] != "TRAP2" {
			t.Fatalf("snmptrapd line %q: security %q is not a TRAP2", line, f[1])
		}
		r := received{version: strings.TrimPrefix(sec[1], "SNMP ")}
		_, r.principal, _ = strings.Cut(sec[2], " ")
		for _, v := range strings.Split(f[3], "~") {
			r.vars = append(r.vars, parseVarbind(t, v))
		}
		out = append(out, r)
	}
	return out
}

// parseVarbind parses "OID = TYPE: VALUE" as snmptrapd prints it with -On
// -Ox.
func parseVarbind(t *testing.T, s string) varbind {
	t.Helper()
	name, val, ok := strings.Cut(s, " = ")
	if !ok {
		t.Fatalf("varbind %q: no ' = '", s)
	}
	v := varbind{oid: strings.TrimPrefix(name, ".")}
	if val == `""` { // an empty octet string
		v.typ, v.octets = "Hex-STRING", []byte{}
		return v
	}
	v.typ, v.value, ok = strings.Cut(val, ": ")
	if !ok {
		t.Fatalf("varbind %q: no type", s)
	}
	var err error
	switch v.typ {
	case "Hex-STRING":
		v.octets, err = hex.DecodeString(strings.ReplaceAll(v.value, " ", ""))
	case "INTEGER":
		v.num, err = strconv.ParseInt(v.value, 10, 64)
	case "Timeticks": // "(123) 0:00:01.23"
		n, _, _ := strings.Cut(strings.TrimPrefix(v.value, "("), ")")
		v.num, err = strconv.ParseInt(n, 10, 64)
	case "OID":
		v.value = strings.TrimPrefix(v.value, ".")
	default:
		t.Fatalf("varbind %q: unexpected type %q", s, v.typ)
	}
	if err != nil {
		t.Fatalf("varbind %q: %v", s, err)
	}
	return v
}

// inNetns runs fn on an OS thread inside the named network namespace, so
// that the sockets fn opens live there, as the daemon's would in its VR.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	if err := netns.Do(ns, func() error { fn(); return nil }); err != nil {
		t.Fatalf("netns %s: %v", ns, err)
	}
}
