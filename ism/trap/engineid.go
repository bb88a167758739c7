package trap

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// enterpriseNumber is the Private Enterprise Number in EnterpriseOID.
const enterpriseNumber = 32473

// engineIDFormatOctets is the fifth octet of an RFC 3411 §5 SnmpEngineID
// whose rest is "octets, administratively assigned".
const engineIDFormatOctets = 5

// engineIDHashLen is how many octets of the host digest follow the format
// octet (RFC 3411 §5 allows 27 at most).
const engineIDHashLen = 12

// machineIDFile holds the host's stable machine ID (systemd, dbus).
const machineIDFile = "/etc/machine-id"

// DeriveEngineID returns the SNMPv3 engine ID of this host when the
// configuration sets none, in the RFC 3411 §5 format: the enterprise number
// with its top bit set, the format octet 5 (octets), then the first 12
// octets of a SHA-256 digest of the host's /etc/machine-id (its hostname if
// there is none). It is stable across restarts of the daemon.
func DeriveEngineID() ([]byte, error) {
	id, err := os.ReadFile(machineIDFile)
	host := strings.TrimSpace(string(id))
	if err != nil || host == "" {
		if host, err = os.Hostname(); err != nil || host == "" {
			return nil, errors.Join(errors.New("trap: derive engine ID: no machine ID and no hostname"), err)
		}
	}
	return engineIDFrom(host), nil
}

// engineIDFrom builds the engine ID of the host identified by host.
func engineIDFrom(host string) []byte {
	sum := sha256.Sum256([]byte("ism snmp engine id\x00" + host))
	id := binary.BigEndian.AppendUint32(nil, 0x80000000|enterpriseNumber)
	id = append(id, engineIDFormatOctets)
	return append(id, sum[:engineIDHashLen]...)
}

// bootsEpoch is where engineBoots counts from.
var bootsEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// engineBoots returns snmpEngineBoots (RFC 3414 §2.2.2) for an engine that
// starts at now: the minutes since bootsEpoch, plus one. The daemon keeps
// no state on disk, so the wall clock stands in for the counter: it grows
// across restarts, which is what a receiver's timeliness check (RFC 3414
// §3.2 step 7) needs. Two starts in one minute share a value, and the
// engine time of the second starts below the first's by less than the
// 150 s window, so its traps are still accepted.
func engineBoots(now time.Time) uint32 {
	m := (now.Unix() - bootsEpoch.Unix()) / 60
	switch {
	case m < 0:
		return 1
	case m >= 1<<31-2:
		// 2147483647 is the latched final value (RFC 3414 §2.2.2).
		return 1<<31 - 2
	}
	return uint32(m) + 1
}

// engineTime returns snmpEngineTime: the seconds since start, at most
// 2147483647 (RFC 3414 §2.2.2).
func engineTime(start, now time.Time) uint32 {
	s := now.Sub(start) / time.Second
	switch {
	case s < 0:
		return 0
	case s > 1<<31-1:
		return 1<<31 - 1
	}
	return uint32(s)
}

// formatEngineID prints an engine ID as hex, as `snmp-server engine-id`
// takes it.
func formatEngineID(id []byte) string { return fmt.Sprintf("0x%x", id) }
