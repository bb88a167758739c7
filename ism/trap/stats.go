package trap

import (
	"fmt"
	"net/netip"

	"github.com/ismgw/ism/ism/config"
)

// ReceiverStats are the counters of one trap receiver.
type ReceiverStats struct {
	Addr    netip.AddrPort
	Version config.SNMPVersion
	User    string // the SNMPv3 user; "" for SNMPv2c
	// Sent counts the traps handed to the socket. UDP has no
	// acknowledgement: a receiver that rejects a trap (a wrong password)
	// still counts as sent.
	Sent uint64
	// Dropped counts the traps not sent because the receiver's queue was
	// full, or because the Sender was closed.
	Dropped uint64
	// Errors counts the traps whose send failed (no route, port
	// unreachable reported by ICMP, a local fault).
	Errors uint64
}

// String prints the receiver and its counters as `show` does, never a
// secret: "192.0.2.9:162 v3 user ops sent 4 dropped 0 errors 1".
func (s ReceiverStats) String() string {
	user := ""
	if s.User != "" {
		user = " user " + s.User
	}
	return fmt.Sprintf("%s v%s%s sent %d dropped %d errors %d", s.Addr, s.Version, user, s.Sent, s.Dropped, s.Errors)
}
