package ism

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/netlab"
)

// snmptrapd as the judge of the gateway's traps: net-snmp's trap receiver
// in a namespace of its own, joined by a veth pair to the namespace the
// gateway runs in (the daemon's own VR, where its trap sockets live), with
// its own configuration, persistent directory and pid file; netlab kills
// it by pid when the test ends. The approach is ism/trap's trapd_test.go.

// OIDs of ISM-IPSEC-MIB (dist/ISM-IPSEC-MIB.txt, enterprises 32473 1),
// written out rather than taken from the code under test.
const (
	oidTrapTunnelUp     = "1.3.6.1.4.1.32473.1.0.1" // ismTunnelUp
	oidTrapTunnelDown   = "1.3.6.1.4.1.32473.1.0.2" // ismTunnelDown
	oidTrapIKEFailure   = "1.3.6.1.4.1.32473.1.0.3" // ismIkeFailure
	oidTrapDPDPeerDead  = "1.3.6.1.4.1.32473.1.0.4" // ismDpdPeerDead
	oidTrapFailover     = "1.3.6.1.4.1.32473.1.0.5" // ismTunnelFailover
	oidVarTunnelName    = "1.3.6.1.4.1.32473.1.1.1.0"
	oidVarDestination   = "1.3.6.1.4.1.32473.1.1.3.0"
	oidVarReason        = "1.3.6.1.4.1.32473.1.1.4.0"
	oidVarFrom          = "1.3.6.1.4.1.32473.1.1.7.0"
	oidVarTo            = "1.3.6.1.4.1.32473.1.1.9.0"
	oidVarSnmpTrapOID   = "1.3.6.1.6.3.1.1.4.1.0"
	trapdCommunity      = "ism-dpd-test"
	trapdFormat         = `TRAP|%V~%v\n` // snmptrapd.conf(5): %V the varbind separator, %v the varbinds
	trapdListenTemplate = "udp6:[%s]:162"
)

// Addresses of the link between the gateway's namespace and snmptrapd's.
var (
	trapLinkISM = netip.MustParsePrefix("2001:db8:7::1/64")
	trapLinkRx  = netip.MustParsePrefix("2001:db8:7::2/64")
)

// trapRx is a running snmptrapd.
type trapRx struct {
	log string
}

// startTrapRx starts snmptrapd in a namespace of its own joined to
// daemonNS, accepting SNMPv2c traps of trapdCommunity, and returns it once
// it has started. The gateway's configuration line for it is trapHostLine.
func startTrapRx(t *testing.T, daemonNS string) *trapRx {
	t.Helper()
	if _, err := exec.LookPath("snmptrapd"); err != nil {
		t.Fatalf("snmptrapd (Debian package snmptrapd, `make deps`) is required: %v", err)
	}
	lab := netlab.New(t)
	ns := lab.NS("trapd")
	lab.Link(daemonNS, "trap0", trapLinkISM, ns, "eth0", trapLinkRx)
	dir := t.TempDir()
	conf := fmt.Sprintf("authCommunity log %s\nformat2 %s\n[snmp] hexOutputLength 0\n", trapdCommunity, trapdFormat)
	confPath := filepath.Join(dir, "snmptrapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &trapRx{log: filepath.Join(dir, "trapd.log")}
	// -f foreground, -C no other configuration, -n no DNS, -On numeric
	// OIDs, -Ox octet strings in hex, no MIBs.
	cmd := lab.Command(ns, "snmptrapd", "-f", "-C", "-c", confPath, "-Lf", r.log, "-n", "-On", "-Ox",
		"-p", filepath.Join(dir, "snmptrapd.pid"), "-M", dir, "-m", "", fmt.Sprintf(trapdListenTemplate, trapLinkRx.Addr()))
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+filepath.Join(dir, "persist"), "SNMPCONFPATH="+dir)
	lab.Start(cmd)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(r.text(), "NET-SNMP version") {
		if time.Now().After(deadline) {
			t.Fatalf("snmptrapd did not start; its log:\n%s", r.text())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// trapHostLine is the gateway's configuration for the receiver.
func trapHostLine() string {
	return fmt.Sprintf("snmp-server host %s version 2c community %s\nsnmp-server enable traps\n", trapLinkRx.Addr(), trapdCommunity)
}

func (r *trapRx) text() string {
	b, _ := os.ReadFile(r.log)
	return string(b)
}

// rxTrap is one trap snmptrapd decoded: its notification OID and its
// varbinds, octet strings as text.
type rxTrap struct {
	oid  string
	vars map[string]string
}

func (x rxTrap) String() string { return fmt.Sprintf("%s %q", x.oid, x.vars) }

// traps returns the traps received so far, in order.
func (r *trapRx) traps(t *testing.T) []rxTrap {
	t.Helper()
	var out []rxTrap
	sc := bufio.NewScanner(strings.NewReader(r.text()))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "TRAP|")
		if !ok {
			continue
		}
		x := rxTrap{vars: map[string]string{}}
		for _, vb := range strings.Split(line, "~") {
			name, val, ok := strings.Cut(vb, " = ")
			if !ok {
				t.Fatalf("snmptrapd varbind %q: no ' = '", vb)
			}
			name = strings.TrimPrefix(name, ".")
			typ, v, _ := strings.Cut(val, ": ")
			switch typ {
			case "Hex-STRING":
				b, err := hex.DecodeString(strings.ReplaceAll(v, " ", ""))
				if err != nil {
					t.Fatalf("snmptrapd varbind %q: %v", vb, err)
				}
				v = string(b)
				if a, ok := netip.AddrFromSlice(b); ok && (name == oidVarDestination || name == oidVarFrom || name == oidVarTo) {
					v = a.String()
				}
			case "OID":
				v = strings.TrimPrefix(v, ".")
			}
			x.vars[name] = v
		}
		x.oid = x.vars[oidVarSnmpTrapOID]
		out = append(out, x)
	}
	return out
}

// wait waits up to timeout for a trap that ok accepts, among those
// received after the first from, and returns it and its position.
func (r *trapRx) wait(t *testing.T, what string, from int, timeout time.Duration, ok func(rxTrap) bool) (rxTrap, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		all := r.traps(t)
		for i := from; i < len(all); i++ {
			if ok(all[i]) {
				return all[i], i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("snmptrapd received no %s trap after the first %d; it received:\n%s", what, from, r.text())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
