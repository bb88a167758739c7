package ike

import (
	"errors"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// This file is the seam for moving IKE SAs between daemons: a restarted
// daemon that takes back the IKE SAs it had (issue 11, §1), and a cluster
// node that carries on a tunnel group another node owned (§2). The line
// card resumes the IPsec SAs itself (from its checkpoints); the daemon
// exports and imports everything else a tunnel needs to go on with the
// same IKE SA: its SPIs or cookies, keys, message IDs, IVs, NAT and DPD
// state, its timers, and the parameters of the child SAs negotiated on it.

// SAState is an IKE SA as its daemon exported it: opaque to everything but
// a daemon of its Version that knows its Format, and secret as a whole
// (it holds SK_d or SKEYID_d and the keys that protect IKE messages), so
// Data is an ipsec.Key and a record is sealed before it is stored
// anywhere. An SAState is a plain value.
type SAState struct {
	Version uint8  // 1 or 2
	Format  uint16 // the exporter's record format
	// Tunnels are the tunnels whose child SAs the record carries, for
	// the line card to file the record with each; not secret.
	Tunnels []string
	Data    ipsec.Key
}

// Zero overwrites the record.
func (s *SAState) Zero() { s.Data.Zero() }

// ImportOptions say how far an imported IKE SA's counters jump past the
// record: what the old daemon may have used after it was taken.
type ImportOptions struct {
	// MessageIDs is, for IKEv2, how far past the record's the peer's
	// next request ID may be (it may have sent requests the old daemon
	// answered after the record): the first request that authenticates
	// within it sets the window there. This end's requests resume at the
	// record's ID, never past it, since a peer with a window of one
	// ignores any other (RFC 7296 §2.3); zero means
	// DefaultMessageIDMargin.
	MessageIDs uint32
	// DPDSequence is, for IKEv1, how far the R-U-THERE sequence number
	// jumps (RFC 3706 §7); zero means DefaultDPDSequenceMargin.
	DPDSequence uint32
}

// Margins of ImportOptions.
const (
	// DefaultMessageIDMargin covers the exchanges an IKE SA can have
	// done in a checkpoint period and a lease TTL: a few DPD probes and
	// rekeys, far fewer than 64.
	DefaultMessageIDMargin = 64
	// DefaultDPDSequenceMargin covers the R-U-THERE inquiries sent in
	// that time (one per retry interval, at most one a second).
	DefaultDPDSequenceMargin = 1024
)

// Exporter is implemented by a Daemon whose IKE SAs can move to another
// daemon. ike/v1 and ike/v2 implement it; so does the version multiplexer
// that runs both. Its methods are safe for concurrent use.
type Exporter interface {
	// Export returns the established IKE SAs that carry child SAs of
	// the tunnels match accepts (nil: every tunnel), or that a matched
	// tunnel's source uses, each with its child SAs' parameters and
	// timers, never the child SAs' keys (the line card has them). An IKE
	// SA in the middle of a negotiation is left out.
	Export(match func(tunnel string) bool) ([]SAState, error)
	// CanImport reports whether the daemon takes a record of s's version
	// and format.
	CanImport(s SAState) bool
	// Import takes the IKE SAs of the records over, with the child SAs
	// whose IPsec SAs the Installer already holds (QuerySA answers for
	// both directions: the line card resumed them); other child SAs are
	// left out. A record for an IKE SA the daemon has already, or of
	// the same SA as another record, is taken only if it is newer.
	// Timers resume where the records left them. The daemon then goes
	// on as if it had negotiated the SAs: it answers DPD, rekeys on
	// schedule, deletes and is deleted. It never returns the records'
	// keys and never calls Installer.AddSA.
	Import(states []SAState, o ImportOptions) error
	// Forget drops the IKE SAs and child SAs of the tunnels match
	// accepts, and the IKE SAs their sources use, without a word to the
	// peer or the Installer: another daemon carries them on (a cluster's
	// handover or fencing). The tunnels are down and do not negotiate
	// until Acquire.
	Forget(match func(tunnel string) bool)
}

// ErrImport is wrapped by Import's errors about a record.
var ErrImport = errors.New("ike: cannot import IKE SA")

// Deadline returns where a timer exported as the absolute time at (zero:
// none) stands on the importer's clock now: the time left, at least
// floor; ok is false when there is no timer.
func Deadline(at, now time.Time, floor time.Duration) (left time.Duration, ok bool) {
	if at.IsZero() {
		return 0, false
	}
	return max(at.Sub(now), floor), true
}
