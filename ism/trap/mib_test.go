package trap

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ism/config"
)

// mibDirs are where snmptranslate finds ISM-IPSEC-MIB and the stand-ins
// for the IETF modules it imports.
const mibDirs = "testdata/mibs:../../dist"

// snmptranslate runs net-snmp's snmptranslate on ISM-IPSEC-MIB and fails
// the test if it reports any problem with the module.
func snmptranslate(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("snmptranslate"); err != nil {
		t.Fatalf("snmptranslate (Debian package snmp, `make deps`) is required: %v", err)
	}
	cmd := exec.Command("snmptranslate", append([]string{"-M", mibDirs, "-m", "ISM-IPSEC-MIB"}, args...)...)
	// Its own configuration and persistent directories: no snmp.conf of
	// the host, and no "Created directory" notice on stderr.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "cert_indexes"), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "SNMPCONFPATH="+dir, "SNMP_PERSISTENT_DIR="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("snmptranslate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// codeOIDs are the names of ISM-IPSEC-MIB and the constants of the code.
var codeOIDs = map[string]string{
	"ismIpsecMIB":                MIBOID,
	"ismTunnelUp":                OIDTunnelUp,
	"ismTunnelDown":              OIDTunnelDown,
	"ismIkeFailure":              OIDIKEFailure,
	"ismDpdPeerDead":             OIDDPDPeerDead,
	"ismTunnelFailover":          OIDTunnelFailover,
	"ismTrapTunnelName":          OIDTunnelName,
	"ismTrapDestinationType":     OIDDestinationType,
	"ismTrapDestination":         OIDDestination,
	"ismTrapReason":              OIDReason,
	"ismTrapDetectedAt":          OIDDetectedAt,
	"ismTrapFromDestinationType": OIDFromDestinationType,
	"ismTrapFromDestination":     OIDFromDestination,
	"ismTrapToDestinationType":   OIDToDestinationType,
	"ismTrapToDestination":       OIDToDestination,
	"ismClusterOwnership":        OIDClusterOwner,
	"ismTrapGroupName":           OIDGroupName,
	"ismTrapNode":                OIDNode,
	"ismTrapOwnershipEvent":      OIDOwnershipEvent,
}

// notificationNames are the MIB's names of the configuration's traps.
var notificationNames = map[config.Trap]string{
	config.TrapTunnelUp:         "ismTunnelUp",
	config.TrapTunnelDown:       "ismTunnelDown",
	config.TrapIKEFailure:       "ismIkeFailure",
	config.TrapDPD:              "ismDpdPeerDead",
	config.TrapFailover:         "ismTunnelFailover",
	config.TrapClusterOwnership: "ismClusterOwnership",
}

// TestMIBMatchesCode has net-snmp parse dist/ISM-IPSEC-MIB.txt and checks
// that it numbers every notification and object as the code does, defines
// none the code lacks, and lists each notification's OBJECTS in the order
// the code sends the varbinds.
func TestMIBMatchesCode(t *testing.T) {
	// -Tz prints every label of the MIB tree: "name"<tabs>"oid".
	mib := map[string]string{}
	line := regexp.MustCompile(`^"([^"]+)"\s+"([0-9.]+)"$`)
	for _, l := range strings.Split(snmptranslate(t, "-Tz"), "\n") {
		if m := line.FindStringSubmatch(l); m != nil && strings.HasPrefix(m[2], EnterpriseOID+".") {
			mib[m[1]] = m[2]
		}
	}
	for name, oid := range codeOIDs {
		if mib[name] != oid {
			t.Errorf("%s: the MIB says %q, the code %s", name, mib[name], oid)
		}
	}
	for name, oid := range mib {
		notifyOrObject := strings.HasPrefix(oid, MIBOID+".0.") || strings.HasPrefix(oid, MIBOID+".1.")
		if _, ok := codeOIDs[name]; notifyOrObject && !ok {
			t.Errorf("the MIB defines %s (%s), the code does not", name, oid)
		}
	}
	for kind, name := range notificationNames {
		if notificationOID[kind] != codeOIDs[name] {
			t.Errorf("trap %s is sent as %s, want %s (%s)", kind, notificationOID[kind], name, codeOIDs[name])
		}
		// -Td prints the definition, with "OBJECTS { a, b, c }".
		def := snmptranslate(t, "-Td", "ISM-IPSEC-MIB::"+name)
		m := regexp.MustCompile(`OBJECTS\s*\{([^}]*)\}`).FindStringSubmatch(def)
		if m == nil {
			t.Errorf("%s: no OBJECTS in\n%s", name, def)
			continue
		}
		var want []string
		for _, o := range strings.Split(m[1], ",") {
			oid, ok := mib[strings.TrimSpace(o)]
			if !ok {
				t.Errorf("%s: OBJECTS names %q, which the MIB does not define", name, strings.TrimSpace(o))
			}
			want = append(want, instance(oid))
		}
		a := netip.MustParseAddr("192.0.2.1")
		n := &notification{kind: kind, tunnel: "t", destination: a, to: a, reason: "r", detectedAt: time.Now()}
		var got []string
		for _, v := range n.varbinds()[2:] {
			got = append(got, v.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: the code sends %q, the MIB's OBJECTS are %q", name, got, want)
		}
	}
}
