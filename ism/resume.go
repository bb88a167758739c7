package ism

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/datapath"
)

// resumeSignaled resumes the signaled tunnels a build collected in r once
// IKE runs: their SAs go on their paths and their IKE SAs to the daemon,
// which carries on with them; a tunnel that cannot resume, or whose IKE SA
// the daemon did not take, renegotiates at once. g.mu is not held.
func (g *Gateway) resumeSignaled(r *resumeSet) {
	if r == nil || len(r.signaled) == 0 {
		return
	}
	d := g.daemon()
	exp, _ := d.(ike.Exporter)
	var states []ike.SAState
	var resumed, renegotiate []*Tunnel
	for _, t := range r.signaled {
		rec, written := r.take(t.Name)
		if rec == nil {
			continue
		}
		if g.resumeSignaledSAs(t, rec, written, r.policy, exp) {
			for _, k := range rec.IKE {
				states = append(states, ike.SAState{Version: k.Version, Format: k.Format, Data: k.Data.Clone()})
			}
			resumed = append(resumed, t)
		} else {
			renegotiate = append(renegotiate, t)
		}
		rec.Zero()
	}
	if len(states) > 0 {
		if err := exp.Import(states, ike.ImportOptions{}); err != nil {
			g.log.Warn("IKE SAs not imported", "err", err)
		}
		for i := range states {
			states[i].Zero()
		}
	}
	up := map[string]bool{}
	if d != nil {
		for _, s := range d.Status().Tunnels {
			up[s.Name] = s.State == "up"
		}
	}
	for _, t := range resumed {
		if !up[t.Name] {
			g.dropResumed(t)
			t.noteResume(append(t.resumedLines(), "the IKE daemon did not take the IKE SA: renegotiated at once")...)
			g.log.Warn("tunnel resumed without its IKE SA: renegotiating at once", "tunnel", t.String())
			renegotiate = append(renegotiate, t)
			continue
		}
		t.setReady(true)
		if g.changeState(t, true, "") {
			g.log.Info("tunnel resumed with its IKE SA", "tunnel", t.String())
		}
		g.post(func() { t.computeMTU(); g.mu.Lock(); g.syncTunnelRoutes(t); g.mu.Unlock() })
	}
	for _, t := range r.signaled {
		if !t.ready.Load() { // not resumed: its routes go in now (build left them out)
			t.setReady(true)
			g.post(func() { g.mu.Lock(); g.syncTunnelRoutes(t); g.mu.Unlock() })
		}
	}
	for _, t := range renegotiate {
		if d != nil {
			d.Acquire(t.Name)
		}
	}
}

// resumeSignaledSAs installs a signaled tunnel's SAs from its record when
// its plan says resume; it reports whether it did, and notes why not.
func (g *Gateway) resumeSignaledSAs(t *Tunnel, rec *checkpoint.Tunnel, written time.Time, pol checkpoint.Policy, exp ike.Exporter) bool {
	renegotiate := func(why string) bool {
		t.noteResume("renegotiated at once: " + why)
		g.log.Info("tunnel renegotiates at once instead of resuming", "tunnel", t.String(), "reason", why)
		return false
	}
	r, ok := t.currentPath().(datapath.Resumer)
	switch {
	case !ok:
		return renegotiate(fmt.Sprintf("the %s datapath cannot resume sequence numbers", g.dps[t.dpIndex()].Name()))
	case exp == nil:
		return renegotiate("the IKE daemon cannot import IKE SAs")
	}
	if why := matchSignaled(t, rec); why != "" {
		return renegotiate(why)
	}
	dec := checkpoint.Plan(rec, checkpoint.Restart{Policy: pol, Down: g.clock.Now().Sub(written), Signaled: true,
		ImportIKE: func(k checkpoint.IKESA) bool { return exp.CanImport(ike.SAState{Version: k.Version, Format: k.Format}) }})
	if dec.Action != checkpoint.Resume {
		return renegotiate(dec.Reason)
	}
	lines, err := g.installResumed(t, r, dec)
	if err != nil {
		g.dropResumed(t)
		return renegotiate(err.Error())
	}
	t.mu.Lock()
	for _, res := range dec.SAs {
		if res.SA.Direction == ipsec.Outbound {
			t.dest, t.negotiated = res.SA.Dst, res.SA.Transform
		}
	}
	t.mu.Unlock()
	t.noteResume(append([]string{fmt.Sprintf("resumed from the checkpoint of %s with its IKE SA: %s", written.Format(time.RFC3339), dec.Reason)}, lines...)...)
	return true
}

// matchSignaled says why a record does not fit a signaled tunnel ("" when
// it does): its SAs must run between the tunnel's source and one of its
// destinations.
func matchSignaled(t *Tunnel, rec *checkpoint.Tunnel) string {
	c := t.conf()
	dests := []netip.Addr{c.TunnelDestination.Addr, c.BackupDestination.Addr}
	for _, sa := range rec.SAs {
		local, remote := sa.Src, sa.Dst
		if sa.Direction == ipsec.Inbound {
			local, remote = sa.Dst, sa.Src
		}
		if local != c.TunnelSource || (c.TunnelDestination.Addr.IsValid() && !slices.Contains(dests, remote)) {
			return fmt.Sprintf("the checkpoint's SA %s runs between %s and %s, not the tunnel's endpoints", sa.ID, local, remote)
		}
	}
	return ""
}

// dropResumed deletes the SAs resumed for a tunnel, silently.
func (g *Gateway) dropResumed(t *Tunnel) {
	t.mu.Lock()
	ids := make([]ipsec.SAID, 0, len(t.sas))
	for id := range t.sas.all() {
		ids = append(ids, id)
	}
	p := t.path
	t.mu.Unlock()
	for _, id := range ids {
		if p != nil {
			_ = p.DeleteSA(id)
		}
		g.seam.forget(id, t)
	}
}

// resumedLines returns what show says of the tunnel's resumption.
func (t *Tunnel) resumedLines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rare == nil {
		return nil
	}
	return slices.Clone(t.rare.resumed)
}
