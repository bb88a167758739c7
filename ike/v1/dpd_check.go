package v1

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// The periodic check of a DPD peer (dpd.go): the traffic its user SAs
// carried, the seed's rules that say when an R-U-THERE is due and when
// the peer is dead, and when to look again.

// dpdTick checks a peer: it measures the traffic, sends an inquiry when
// the seed's rules call for one, retries, or declares the peer dead.
func (d *Daemon) dpdTick(p *dpdPeer) {
	d.mu.Lock()
	if d.closed || d.dpd[p.key] != p {
		d.mu.Unlock()
		return
	}
	p.timer = nil
	cfg, ok := d.dpdSettingsLocked(p)
	sa := d.dpdSALocked(p)
	if !ok || sa == nil || !sa.peerDPD {
		delete(d.dpd, p.key) // armed again by the next phase 1 or tunnel up
		d.mu.Unlock()
		return
	}
	p.cfg = cfg
	var ins, outs []ipsec.SAID
	for _, tu := range p.tunnels {
		for _, c := range tu.children {
			if c.in.Dst == p.key.local && c.out.Dst == p.key.remote {
				ins, outs = append(ins, c.in), append(outs, c.out)
			}
		}
	}
	d.wg.Add(1) // Close waits for the Installer and Transport calls below
	d.mu.Unlock()
	defer d.wg.Done()

	lastIn, lastOut := d.lastUsed(ins), d.lastUsed(outs)

	d.mu.Lock()
	if d.closed || d.dpd[p.key] != p {
		d.mu.Unlock()
		return
	}
	now := d.now()
	p.lastOut = lastOut
	p.lastIn = later(lastIn, p.lastIKE)
	send, dead := p.decide(now, d)
	var seq uint32
	if send {
		seq = p.seq
		d.counters.DPDInquiries++
		sa = d.dpdSALocked(p)
	}
	if !dead {
		p.timer = d.clk.AfterFunc(p.next(now), func() { d.dpdTick(p) })
	} else {
		delete(d.dpd, p.key)
	}
	n, last := p.outstanding, dpdLast{sent: p.lastOut, received: p.lastIn, seq: p.seq}
	d.mu.Unlock()

	switch {
	case dead:
		reason := fmt.Sprintf("dpd: peer %v dead after %d unanswered R-U-THERE", p.key.remote, n)
		d.peerDead(p.key, last, reason)
	case send && sa != nil:
		d.log.Debug("DPD inquiry", "local", p.key.local, "remote", p.key.remote, "seq", seq, "try", n)
		d.sendDPD(sa, NotifyDPDRUThere, seq)
	}
}

// decide applies the seed's rules at now: it returns whether to send an
// R-U-THERE (p.seq is its number) and whether the peer is dead.
// Daemon.mu must be held.
func (p *dpdPeer) decide(now time.Time, d *Daemon) (send, dead bool) {
	cfg := p.cfg
	if p.outstanding > 0 {
		switch {
		case p.lastIn.After(p.inquiryAt):
			p.outstanding = 0 // traffic or an answer since the inquiry
		case now.Sub(p.sentAt) < cfg.RetryInterval:
			return false, false
		case p.outstanding > cfg.Retries:
			return false, true
		default:
			p.next32(d)
			p.outstanding++
			p.sentAt = now
			return true, false
		}
	}
	sentLately := !p.lastOut.IsZero() && now.Sub(p.lastOut) <= cfg.Sent
	silent := now.Sub(p.lastIn) >= cfg.Silent
	idle := now.Sub(later(p.lastIn, p.lastOut)) >= cfg.Idle
	if (sentLately && silent) || idle {
		p.next32(d)
		p.firstSeq = p.seq
		p.outstanding = 1
		p.inquiryAt, p.sentAt = now, now
		return true, false
	}
	return false, false
}

// next32 advances the R-U-THERE sequence number; the first one is random
// with the top bit clear, leaving room to grow.
func (p *dpdPeer) next32(d *Daemon) {
	if p.seq == 0 {
		var b [4]byte
		d.random(b[:])
		p.seq = binary.BigEndian.Uint32(b[:])&0x7fffffff | 1
		return
	}
	p.seq++
	if p.seq == 0 {
		p.seq = 1
	}
}

// next returns when to check the peer again: when a retry is due, or when
// one of the rules can fire next if the traffic stays as it is, but at
// least every half of the shortest timer, so that traffic starting to
// flow is noticed.
func (p *dpdPeer) next(now time.Time) time.Duration {
	cfg := p.cfg
	if p.outstanding > 0 {
		return max(p.sentAt.Add(cfg.RetryInterval).Sub(now), dpdMinTick)
	}
	wait := min(cfg.Sent, cfg.Silent, cfg.Idle) / 2
	if !p.lastOut.IsZero() && now.Sub(p.lastOut) <= cfg.Sent {
		wait = min(wait, p.lastIn.Add(cfg.Silent).Sub(now))
	}
	wait = min(wait, later(p.lastIn, p.lastOut).Add(cfg.Idle).Sub(now))
	return max(wait, dpdMinTick)
}

// lastUsed returns the newest LastUsed of the SAs; SAs the Installer does
// not know (deleted meanwhile) are skipped.
func (d *Daemon) lastUsed(ids []ipsec.SAID) time.Time {
	var t time.Time
	for _, id := range ids {
		if u, err := d.inst.QuerySA(id); err == nil {
			t = later(t, u.LastUsed)
		}
	}
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
