package checkpoint

import (
	"errors"
	"fmt"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// Action is what a restarted gateway, or a node taking over a tunnel
// group, does with a tunnel found in a checkpoint.
type Action uint8

// Actions.
const (
	// Resume installs the tunnel's SAs where they left off, outbound
	// past the margin, and hands its IKE SAs to their daemon.
	Resume Action = iota
	// Renegotiate starts IKE for a signaled tunnel at once.
	Renegotiate
	// Refuse leaves a manual tunnel down: its SAs cannot carry on
	// (sequence space or lifetime used up) and only new keys help.
	Refuse
)

func (a Action) String() string {
	return [...]string{"resume", "renegotiate", "refuse"}[a]
}

// Restart describes the start that reads a checkpoint.
type Restart struct {
	Policy Policy
	// Down is the time since the checkpoint was written: the SAs aged
	// by it (their peers' copies did).
	Down time.Duration
	// Signaled says the tunnel is signaled (IKE) rather than manual.
	Signaled bool
	// ImportIKE reports whether the IKE daemon can take a record; nil
	// means none can.
	ImportIKE func(IKESA) bool
}

// Resumed is where one SA of a resumed tunnel starts.
type Resumed struct {
	SA *SA
	// After and Margin: the outbound SA's first packet carries After+1.
	After  uint64
	Margin Margin
	// Used is the lifetime used, the time down included.
	Used ipsec.Lifetime
}

// Decision is the plan for one tunnel, with the reason show detail gives.
type Decision struct {
	Action Action
	Reason string
	SAs    []Resumed // for Resume, one per SA of the tunnel
}

// Plan decides how a tunnel carries on from its checkpoint: a manual
// tunnel resumes, or is refused when an SA has used up its lifetime or
// sequence space; a signaled tunnel resumes when its IKE SAs can be
// imported and its SAs can carry on, and renegotiates at once otherwise.
func Plan(t *Tunnel, r Restart) Decision {
	fail := func(why string) Decision {
		if r.Signaled {
			return Decision{Action: Renegotiate, Reason: why}
		}
		return Decision{Action: Refuse, Reason: why}
	}
	if len(t.SAs) == 0 {
		return fail("no SA in the checkpoint")
	}
	if r.Signaled {
		if len(t.IKE) == 0 {
			return fail("no IKE SA in the checkpoint")
		}
		for _, k := range t.IKE {
			if r.ImportIKE == nil || !r.ImportIKE(k) {
				return fail(fmt.Sprintf("IKEv%d record format %d cannot be imported", k.Version, k.Format))
			}
		}
	}
	d := Decision{Action: Resume}
	var out int
	for i := range t.SAs {
		sa := &t.SAs[i]
		used := sa.Used
		used.Time += max(r.Down, 0)
		h := sa.Limits.Hard
		if h.Time > 0 && used.Time >= h.Time || h.Bytes > 0 && used.Bytes >= h.Bytes || h.Packets > 0 && used.Packets >= h.Packets {
			return fail(fmt.Sprintf("SA %s used its hard lifetime", sa.ID))
		}
		res := Resumed{SA: sa, Used: used}
		if sa.Direction == ipsec.Outbound {
			var err error
			res.After, res.Margin, err = r.Policy.ResumeAfter(sa)
			if errors.Is(err, ErrSeqExhausted) {
				return fail(fmt.Sprintf("SA %s has no sequence numbers left past its margin", sa.ID))
			}
			out++
		}
		d.SAs = append(d.SAs, res)
	}
	d.Reason = fmt.Sprintf("%d SAs resumed, %d outbound past their checkpoints", len(d.SAs), out)
	if r.Signaled {
		d.Reason += fmt.Sprintf(", %d IKE SAs imported", len(t.IKE))
	}
	return d
}
