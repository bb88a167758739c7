package v2

import (
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// Dead peer detection. IKEv2's liveness check is an empty INFORMATIONAL
// request (RFC 7296 §2.4: "an INFORMATIONAL request with no payloads ...
// a response ... proves liveness"); when to send one follows the seed's
// timers, as ike/v1 does with R-U-THERE: traffic sent to the peer within
// Sent but nothing back from it within Silent, or nothing either way for
// Idle. The check is retransmitted every RetryInterval, Retries times (the
// same message: §2.1 forbids a new message ID while one is outstanding);
// unanswered, the peer is dead: PeerDead, then its IKE SA and child SAs go
// (peerGone). Any other request of the IKE SA that goes unanswered after
// its retransmissions ends the SA the same way. Traffic is read from the
// child SAs' usage (Installer.QuerySA); an authenticated message from the
// peer counts as traffic received.

// livenessMinTick bounds how often an IKE SA is checked.
const livenessMinTick = 50 * time.Millisecond

// liveness is an IKE SA's dead peer detection. Guarded by the SA's mutex.
type liveness struct {
	cfg         ipsec.DPD
	timer       clock.Timer
	outstanding bool
}

func (l *liveness) stop() {
	if l.timer != nil {
		l.timer.Stop()
	}
}

func (l *liveness) tick() time.Duration {
	t := min(l.cfg.Sent, l.cfg.Silent, l.cfg.Idle, l.cfg.RetryInterval) / 2
	return max(t, livenessMinTick)
}

// dpdSettings returns the most demanding DPD settings of the tunnels to
// the SA's peer; false when none has DPD on. Daemon.mu must be held.
func (d *Daemon) dpdSettings(sa *ikeSA) (ipsec.DPD, bool) {
	var out ipsec.DPD
	for tu := range d.tunnelsAt(sa.local.Addr(), sa.remote.Addr(), sa.remoteID) {
		t := tu.cfg
		if tu.remoteAddr() != sa.remote.Addr() && (t.Destination.IsValid() || !t.RemoteID.Equal(sa.remoteID)) {
			continue
		}
		c := d.cfg.TunnelDPD(t)
		if !c.Enabled {
			continue
		}
		if !out.Enabled {
			out = c
			continue
		}
		out.Sent, out.Silent, out.Idle = min(out.Sent, c.Sent), min(out.Silent, c.Silent), min(out.Idle, c.Idle)
		out.RetryInterval, out.Retries = min(out.RetryInterval, c.RetryInterval), min(out.Retries, c.Retries)
	}
	return out, out.Enabled
}

// armLiveness starts dead peer detection on an established SA if a
// tunnel to its peer asks for it. The SA's mutex must be held.
func (sa *ikeSA) armLiveness() {
	d := sa.d
	d.mu.Lock()
	cfg, ok := d.dpdSettings(sa)
	d.mu.Unlock()
	if !ok || sa.dpd != nil {
		return
	}
	sa.dpd = &liveness{cfg: cfg}
	sa.dpd.timer = d.clk.AfterFunc(sa.dpd.tick(), sa.livenessCheck)
}

// livenessCheck measures the traffic and sends a liveness check when the
// seed's rules call for one.
func (sa *ikeSA) livenessCheck() {
	d := sa.d
	sa.lock()
	if sa.state != stateEstablished || sa.dpd == nil {
		sa.unlock()
		return
	}
	var in, out []ipsec.SAID
	for _, c := range sa.children {
		in, out = append(in, c.in), append(out, c.out)
	}
	sa.unlock()
	newest := func(ids []ipsec.SAID) time.Time {
		var t time.Time
		for _, id := range ids {
			if u, err := d.inst.QuerySA(id); err == nil && u.LastUsed.After(t) {
				t = u.LastUsed
			}
		}
		return t
	}
	lastIn, lastOut := newest(in), newest(out)

	sa.lock()
	defer sa.unlock()
	l := sa.dpd
	if sa.state != stateEstablished || l == nil {
		return
	}
	if heard := sa.heardAt(); heard.After(lastIn) {
		lastIn = heard
	}
	now := d.clk.Now()
	last := lastIn
	if lastOut.After(last) {
		last = lastOut
	}
	due := (now.Sub(lastOut) < l.cfg.Sent && now.Sub(lastIn) >= l.cfg.Silent) || now.Sub(last) >= l.cfg.Idle
	if due && !l.outstanding && !sa.win.busy() {
		l.outstanding = true
		d.count(func(c *ike.Counters) { c.DPDInquiries++ })
		sa.request(&request{exchange: Informational,
			schedule: ike.Retransmit{Timeout: l.cfg.RetryInterval, Base: 1, Tries: l.cfg.Retries},
			build:    func(sa *ikeSA) ([]Payload, error) { return nil, nil },
			onResponse: func(sa *ikeSA, m *Message) {
				l.outstanding = false
				d.count(func(c *ike.Counters) { c.DPDAcks++ })
			},
			onTimeout: func(sa *ikeSA) { sa.peerGone("DPD: the peer did not answer liveness checks") },
		})
	}
	l.timer = d.clk.AfterFunc(l.tick(), sa.livenessCheck)
}
