package ism

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/datapath"
	"github.com/ismgw/ism/offload"
)

// Checkpoints (issue 11): the gateway says the state of its tunnels' SAs
// for a checkpoint (Checkpoint), and builds tunnels that resume from one
// (Options.Resume at start, StartGroup when a cluster node takes a group
// over). Outbound SAs resume past their checkpoint by a margin
// (checkpoint.Plan), inbound ones with their checkpointed window; a
// signaled tunnel's IKE SAs go to its daemon (ike.Exporter), and a tunnel
// that cannot resume renegotiates at once (signaled) or is refused
// (manual, out of sequence numbers).

// Resume is what a gateway starts from (Options.Resume).
type Resume struct {
	// State is the last checkpoint: the daemon's state file.
	State *checkpoint.State
}

// resumeSet is the records the tunnels being built resume from. It is
// guarded by Gateway.mu while apply or StartGroup builds tunnels; the
// signaled tunnels it collects resume once IKE runs.
type resumeSet struct {
	tunnels  map[string]*checkpoint.Tunnel
	written  map[string]time.Time
	policy   checkpoint.Policy
	signaled []*Tunnel
}

// newResumeSet indexes a state's tunnels; nil for none.
func newResumeSet(tunnels []checkpoint.Tunnel, written func(name string) time.Time, p checkpoint.Policy) *resumeSet {
	if len(tunnels) == 0 {
		return nil
	}
	r := &resumeSet{tunnels: map[string]*checkpoint.Tunnel{}, written: map[string]time.Time{}, policy: p}
	for i := range tunnels {
		r.tunnels[tunnels[i].Name] = &tunnels[i]
		r.written[tunnels[i].Name] = written(tunnels[i].Name)
	}
	return r
}

// take returns a tunnel's record, once; nil-safe.
func (r *resumeSet) take(name string) (*checkpoint.Tunnel, time.Time) {
	if r == nil {
		return nil, time.Time{}
	}
	rec := r.tunnels[name]
	delete(r.tunnels, name)
	return rec, r.written[name]
}

// zero overwrites the keys of the records not taken.
func (r *resumeSet) zero() {
	if r == nil {
		return
	}
	for _, t := range r.tunnels {
		t.Zero()
	}
}

// Checkpoint returns the state of the tunnels match accepts (nil: every
// tunnel that runs here) for a checkpoint.Checkpointer: each SA with its
// keys in fresh memory, its sequence state and lifetime used, and each
// signaled tunnel's IKE SAs as its daemon exports them. A tunnel on a
// datapath that cannot say its sequence state (XFRM) is left out, as are
// tunnels with nothing to resume.
func (g *Gateway) Checkpoint(match func(tunnel string) bool) ([]checkpoint.Tunnel, error) {
	ikeOf := map[string][]checkpoint.IKESA{}
	if exp, ok := g.daemon().(ike.Exporter); ok {
		states, err := exp.Export(match)
		if err != nil {
			return nil, err
		}
		for i := range states {
			for _, name := range states[i].Tunnels {
				ikeOf[name] = append(ikeOf[name], checkpoint.IKESA{Version: states[i].Version, Format: states[i].Format,
					Data: states[i].Data.Clone()})
			}
			states[i].Zero()
		}
	}
	var out []checkpoint.Tunnel
	for name, t := range *g.byName.Load() {
		if match != nil && !match(name) {
			continue
		}
		rec := checkpoint.Tunnel{Name: name, IKE: ikeOf[name]}
		if r, ok := t.currentPath().(datapath.Resumer); ok {
			states, err := r.Checkpoint()
			if err != nil {
				rec.Zero()
				zeroTunnels(out)
				return nil, err
			}
			for _, s := range states {
				rec.SAs = append(rec.SAs, record(&s))
			}
		}
		if len(rec.SAs) == 0 {
			rec.Zero()
			continue
		}
		out = append(out, rec)
	}
	return out, nil
}

func zeroTunnels(ts []checkpoint.Tunnel) {
	for i := range ts {
		ts[i].Zero()
	}
}

// record turns a path's SA state into a checkpoint record, taking its
// keys.
func record(s *datapath.SAState) checkpoint.SA {
	a := &s.SA
	return checkpoint.SA{ID: a.ID, Direction: a.Direction, Transform: a.Transform, Mode: s.Mode, Src: a.Src, Dst: a.ID.Dst,
		UDPEncap: a.UDPEncap, SrcPort: a.SrcPort, DstPort: a.DstPort, ESN: a.ESN, ReplayWindow: s.ReplayWindow,
		Limits: a.Limits, Used: s.Snapshot.Used, CipherKey: a.CipherKey, AuthKey: a.AuthKey,
		Seq: s.Snapshot.Seq, Replay: s.Snapshot.Replay}
}

// pathSA turns a record back into an SA to install, with copies of its
// keys.
func pathSA(r *checkpoint.SA) *datapath.SA {
	return &datapath.SA{ID: r.ID, Direction: r.Direction, Transform: r.Transform, Src: r.Src, UDPEncap: r.UDPEncap,
		SrcPort: r.SrcPort, DstPort: r.DstPort, CipherKey: r.CipherKey.Clone(), AuthKey: r.AuthKey.Clone(),
		ESN: r.ESN, Limits: r.Limits}
}

// errRefused says a manual tunnel's checkpoint cannot carry on.
var errRefused = errors.New("checkpoint refused")

// resumeManual installs a manual tunnel's SAs on p from its record, when
// the record matches the configuration and its plan says resume. It
// reports whether it did; an error wrapping errRefused leaves the tunnel
// down (its SAs ran out of sequence numbers or lifetime).
func (g *Gateway) resumeManual(t *Tunnel, p datapath.Path, rec *checkpoint.Tunnel, written time.Time, pol checkpoint.Policy) (bool, error) {
	defer rec.Zero()
	r, ok := p.(datapath.Resumer)
	if !ok {
		t.noteResume(fmt.Sprintf("not resumed: the %s datapath cannot resume sequence numbers; SAs start at 1", g.dps[t.dpIndex()].Name()))
		return false, nil
	}
	if why := g.matchManual(t, rec); why != "" {
		t.noteResume("checkpoint not used: " + why + "; SAs start afresh")
		return false, nil
	}
	dec := checkpoint.Plan(rec, checkpoint.Restart{Policy: pol, Down: g.clock.Now().Sub(written)})
	if dec.Action == checkpoint.Refuse {
		t.noteResume("refused: " + dec.Reason)
		return false, fmt.Errorf("%w: %s", errRefused, dec.Reason)
	}
	lines, err := g.installResumed(t, r, dec)
	if err != nil {
		return false, err
	}
	t.noteResume(append([]string{fmt.Sprintf("resumed from the checkpoint of %s: %s", written.Format(time.RFC3339), dec.Reason)}, lines...)...)
	g.log.Info("tunnel resumed", "tunnel", t.String(), "checkpoint", written, "how", dec.Reason)
	return true, nil
}

// matchManual says why a record does not fit a manual tunnel's
// configuration ("" when it does): its SAs must be the configured ones,
// keys included.
func (g *Gateway) matchManual(t *Tunnel, rec *checkpoint.Tunnel) string {
	if len(rec.SAs) != 2 {
		return fmt.Sprintf("%d SAs in the checkpoint", len(rec.SAs))
	}
	for i := range rec.SAs {
		r := &rec.SAs[i]
		c := t.conf().Outbound
		if r.Direction == ipsec.Inbound {
			c = t.conf().Inbound
		}
		if c == nil || r.ID.SPI != c.SPI || r.Transform != c.Transform || r.ESN != t.conf().ESN ||
			subtle.ConstantTimeCompare(r.CipherKey, c.CipherKey) != 1 || subtle.ConstantTimeCompare(r.AuthKey, c.AuthKey) != 1 {
			return fmt.Sprintf("%s SA 0x%08x changed", r.Direction, r.ID.SPI)
		}
	}
	return ""
}

// installResumed installs the SAs of a resume decision and returns show's
// line for each.
func (g *Gateway) installResumed(t *Tunnel, r datapath.Resumer, dec checkpoint.Decision) ([]string, error) {
	var lines []string
	for _, res := range dec.SAs {
		sa := res.SA
		rs := resumeOf(res)
		if err := r.ResumeSA(pathSA(sa), rs); err != nil {
			return nil, fmt.Errorf("%s SA 0x%08x: %w", sa.Direction, sa.ID.SPI, err)
		}
		g.seam.register(sa.ID, t, sa.Direction)
		if sa.Direction == ipsec.Outbound {
			lines = append(lines, fmt.Sprintf("outbound SA 0x%08x %s", sa.ID.SPI, resumedText(sa.Seq, res)))
		} else {
			lines = append(lines, fmt.Sprintf("inbound SA 0x%08x resumed with its window at seq %d", sa.ID.SPI, sa.Replay.Top))
		}
	}
	return lines, nil
}

// resumeOf is where an SA of a decision resumes.
func resumeOf(res checkpoint.Resumed) offload.Resume {
	return offload.Resume{After: res.After, Replay: res.SA.Replay, Used: res.Used}
}

// resumedText says where an outbound SA resumed and why there.
func resumedText(seq uint64, res checkpoint.Resumed) string {
	m := res.Margin
	s := fmt.Sprintf("resumed at seq %d (checkpoint %d + margin %d from %.0f pkt/s × %.2f s × %g", res.After+1, seq, m.N,
		m.Rate, m.Window.Seconds(), m.Safety)
	switch {
	case m.Capped:
		s += ", held at the ESN cap"
	case m.N == m.Floor:
		s += fmt.Sprintf(", at least %d", m.Floor)
	}
	return s + ")"
}

// noteResume sets what show says of the tunnel's resumption.
func (t *Tunnel) noteResume(lines ...string) {
	t.mu.Lock()
	t.resumed = lines
	t.mu.Unlock()
}

// dpIndex returns the index of the tunnel's datapath.
func (t *Tunnel) dpIndex() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dp
}
