package v1

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/transform"
)

// startQuickMode starts the quick mode of a plan on an established IKE
// SA.
func (d *Daemon) startQuickMode(plan *qmPlan, sa *ikeSA) {
	tu := plan.tu
	d.mu.Lock()
	name := tu.cfg.Name
	if d.tunnels[name] != tu || plan.replaces != nil && plan.replaces.dead {
		if plan.replaces != nil {
			plan.replaces.rekeying = false
		} else if tu.acq == plan {
			tu.acq = nil
		}
		d.mu.Unlock()
		return
	}
	if plan.replaces == nil {
		tu.qm = "QM_I1"
	}
	d.mu.Unlock()
	msgID := d.msgID(sa)
	ex := d.newExchange(sa, msgID)
	d.mu.Lock()
	ivErr := initIV(ex)
	remote := sa.remote.Addr()
	d.mu.Unlock()
	q := &quickMode{d: d, ex: ex, sa: sa, tu: tu, initiator: true, plan: plan}
	start := d.now()
	if ivErr != nil {
		ex.done(nil)
		d.negotiationFailed(plan, remote, "quick mode: "+errString(ivErr))
		return
	}
	if !d.spawn(func() {
		err := q.runInitiator()
		q.zero()
		ex.done(nil)
		if err != nil {
			if errors.Is(err, errNoProposal) || isNotify(err, NotifyNoProposalChosen) {
				d.count(func(c *ike.Counters) { c.NoProposalChosen++ })
			}
			if errors.Is(err, errTimeout) {
				d.dropUnansweredIKESA(sa, start)
			}
			d.negotiationFailed(plan, remote, "quick mode: "+errString(err))
		}
	}) {
		ex.done(nil)
		d.negotiationFailed(plan, remote, "daemon closed")
	}
}

func isNotify(err error, t NotifyType) bool {
	var n notifyError
	return errors.As(err, &n) && n.t == t
}

// runInitiator runs quick mode as initiator: the tunnel's transform set as
// proposals in priority order, PFS with the tunnel's group when enabled.
func (q *quickMode) runInitiator() error {
	props, err := q.proposals()
	if err != nil {
		return err
	}
	if err := q.sendQM1(props); err != nil {
		return err
	}
	pk, err := q.ex.read(true)
	if err != nil {
		return err
	}
	m, err := q.open(pk, q.hash2)
	if err != nil {
		return err
	}
	if err := q.readQM2(m, props); err != nil {
		return err
	}
	in, out := q.userSAs()
	c := q.child()
	if err := q.d.inst.AddSA(c.in, in); err != nil {
		return fmt.Errorf("v1: installing the inbound SA: %w", err)
	}
	q.ex.send(q.ex.sealed(ExchangeQuick, []outPayload{{PayloadHash, q.hash3()}}))
	q.d.mu.Lock()
	q.tu.peer = q.sa.remote
	q.d.setSALocked(q.tu, q.sa)
	q.d.mu.Unlock()
	// The answer to QM2 is QM3: remember it for retransmitted QM2s.
	q.d.mu.Lock()
	q.sa.remember(q.ex.msgID, pk.data, q.ex.last)
	q.d.mu.Unlock()
	if q.plan != nil && q.plan.replaces != nil {
		q.d.switchLater(c, out, q.plan, q.sa, q.ex.last)
		return nil
	}
	if err := q.d.installOutbound(c, out, q.plan); err != nil {
		return fmt.Errorf("v1: installing the outbound SA: %w", err)
	}
	return nil
}

// rekeySwitchDelay is how long the initiator of a rekey keeps sending on
// the old outbound SA after QM3. A responder may install its new SAs only
// when QM3 arrives (charon does; RFC 2409 leaves it open): packets on the
// new outbound SA that overtake QM3's processing would be dropped there,
// and a delete of the old pair sent right after QM3 can be processed
// before it (charon handles one IKE SA's messages on several threads),
// leaving the peer without an outbound SA for a moment.
const rekeySwitchDelay = 500 * time.Millisecond

// switchLater installs a rekey's outbound SA, and retires the pair it
// replaces (plan.replaces), rekeySwitchDelay after QM3; the old pair
// carries the traffic until then, or until it expires or the peer deletes
// it (takeOver).
//
// A peer that has QM3 sends on the new pair (charon switches at once): when
// nothing came in on the new inbound SA by then, QM3 may have been lost on
// a busy path (the responder has nothing to resend), so it goes once more
// and the switch waits as long again.
func (d *Daemon) switchLater(c *childSA, out ike.UserSA, plan *qmPlan, sa *ikeSA, qm3 []byte) {
	old := plan.replaces
	d.mu.Lock()
	old.pend().successor = &successor{c: c, out: out, plan: plan, due: d.now().Add(rekeySwitchDelay), qm3: qm3}
	d.pendingIn[c.in] = old
	d.mu.Unlock()
	d.armSwitch(old, sa, rekeySwitchDelay)
}

// armSwitch makes old's successor take over after wait, or, when nothing
// came in on its inbound SA by then and QM3 has not been resent yet,
// resends QM3 and waits rekeySwitchDelay more (switchLater). An imported
// successor is armed for what was left of its wait.
func (d *Daemon) armSwitch(old *childSA, sa *ikeSA, wait time.Duration) {
	d.clk.AfterFunc(wait, func() {
		d.mu.Lock()
		s := old.successorOf()
		d.mu.Unlock()
		if s == nil {
			return
		}
		if u, err := d.inst.QuerySA(s.c.in); err == nil && u.Packets == 0 {
			d.mu.Lock()
			resend := !s.done && !s.resent
			if resend {
				s.resent, s.due = true, d.now().Add(rekeySwitchDelay)
			}
			d.mu.Unlock()
			if resend {
				d.sendTo(sa, s.qm3)
				d.clk.AfterFunc(rekeySwitchDelay, func() { d.takeOver(old) })
				return
			}
		}
		d.takeOver(old)
	})
}

// successor is a rekey's new pair waiting to take over from the old one:
// its inbound SA is in, its outbound SA not yet. Export carries it, so
// that a daemon importing the IKE SA in the window switches as this one
// would have.
type successor struct {
	c    *childSA
	out  ike.UserSA
	plan *qmPlan // the rekey's
	done bool
	// due is when the pair takes over; qm3 is the quick mode's last
	// message, resent once (resent) when nothing came in by then.
	due    time.Time
	qm3    []byte
	resent bool
}

// takeOver makes old's successor, if one waits, the tunnel's current pair
// and retires old; it reports whether one did. A tunnel removed or a daemon
// closed meanwhile gets the successor's inbound SA deleted instead.
func (d *Daemon) takeOver(old *childSA) bool {
	d.mu.Lock()
	s := old.successorOf()
	if s == nil || s.done {
		d.mu.Unlock()
		return false
	}
	s.done = true
	delete(d.pendingIn, s.c.in)
	name := s.c.tu.cfg.Name
	gone := d.closed || d.tunnels[name] != s.c.tu
	d.mu.Unlock()
	if gone {
		d.abandon(s)
		return false
	}
	if err := d.installOutbound(s.c, s.out, s.plan); err != nil {
		d.log.Warn("rekey: installing the outbound SA failed", "tunnel", name, "err", err)
		return false
	}
	return true
}

// dropSuccessor deletes the rekey still waiting to take over from c, when
// c's tunnel goes down.
func (d *Daemon) dropSuccessor(c *childSA) {
	d.mu.Lock()
	s := c.successorOf()
	if s == nil || s.done {
		d.mu.Unlock()
		return
	}
	s.done = true
	delete(d.pendingIn, s.c.in)
	d.mu.Unlock()
	d.abandon(s)
}

// abandon deletes the inbound SA of a rekey that will not take over, and
// tells the peer: it has the pair since QM3 and sends on it. Without the
// delete, a peer whose rekey went through just before this end stopped (a
// restart, a reload that removed the tunnel) went on sending into an SA
// nobody had until its soft lifetime (the one-minute soak: 21 s of probes
// lost).
func (d *Daemon) abandon(s *successor) {
	d.mu.Lock()
	sa := d.usableSA(s.c)
	d.mu.Unlock()
	_ = d.inst.DeleteSA(s.c.in)
	if sa != nil {
		d.sendDeleteChild(sa, s.c.in)
	}
}

// proposals builds one proposal per transform of the set, numbered in
// priority order, each with this end's SPI for its protocol.
func (q *quickMode) proposals() ([]Proposal, error) {
	d := q.d
	d.mu.Lock()
	t := q.tu.cfg
	lt := d.tunnelLifetime(t)
	encap := encapMode(q.sa)
	local := q.sa.local.Addr()
	d.mu.Unlock()
	q.lifetime = lt
	q.localSel, q.peerSel = q.plan.local, q.plan.remote
	attrs := childAttrs{Encap: encap, Group: t.PFSGroup, Lifetime: lt}
	spis := map[transform.Protocol]uint32{}
	var props []Proposal
	for i, tr := range t.TransformSet {
		spi, ok := spis[tr.Protocol]
		if !ok {
			var err error
			if spi, err = d.inst.AllocateSPI(t.Name, tr.Protocol, local); err != nil {
				return nil, fmt.Errorf("v1: allocating an SPI: %w", err)
			}
			spis[tr.Protocol] = spi
		}
		props = append(props, Proposal{Number: uint8(i + 1), Protocol: protocolID(tr),
			SPI: binary.BigEndian.AppendUint32(nil, spi), Transforms: []Transform{ipsecTransform(1, tr, attrs)}})
	}
	q.ex.spi = spis[transform.ESP]
	if q.ex.spi == 0 {
		q.ex.spi = spis[transform.AH]
	}
	if t.PFSGroup != 0 {
		g, _ := ike.LookupGroup(t.PFSGroup)
		k, err := g.GenerateKey(d.rand)
		if err != nil {
			return nil, err
		}
		q.dh = k
	}
	return props, nil
}

func (q *quickMode) sendQM1(props []Proposal) error {
	q.ni = q.d.nonce()
	sa := SA{DOI: DOIIPsec, Situation: SituationIdentityOnly, Proposals: props}
	ps := []outPayload{{PayloadSA, sa.marshal()}, {PayloadNonce, q.ni}}
	if q.dh != nil {
		ps = append(ps, outPayload{PayloadKE, q.dh.Public})
	}
	q.idci = selectorID(q.localSel).marshal()
	q.idcr = selectorID(q.peerSel).marshal()
	ps = append(ps, outPayload{PayloadID, q.idci}, outPayload{PayloadID, q.idcr})
	q.ex.send(q.seal(q.hash1, ps))
	q.d.mu.Lock()
	if q.plan.replaces == nil {
		q.tu.qm = "QM_I2"
	}
	q.d.mu.Unlock()
	return nil
}

// readQM2 checks the responder's choice against the proposals and takes
// its SPI, nonce, KE and lifetime.
func (q *quickMode) readQM2(m *Message, props []Proposal) error {
	if err := peerError(m); err != nil {
		return err
	}
	sp, np := m.First(PayloadSA), m.First(PayloadNonce)
	if sp == nil {
		return unexpectedError(PayloadSA, m)
	}
	if np == nil {
		return unexpectedError(PayloadNonce, m)
	}
	q.nr = append([]byte(nil), np.Body...)
	sa, err := ParseSA(sp.Body)
	if err != nil {
		return err
	}
	if len(sa.Proposals) != 1 || len(sa.Proposals[0].Transforms) != 1 || len(sa.Proposals[0].SPI) != 4 {
		return fmt.Errorf("%w: the responder must choose one proposal with one transform", errNoProposal)
	}
	got := sa.Proposals[0]
	var mine *Proposal
	for i := range props {
		if props[i].Number == got.Number && props[i].Protocol == got.Protocol {
			mine = &props[i]
		}
	}
	if mine == nil {
		return fmt.Errorf("%w: the responder chose proposal %d, which was not offered", errNoProposal, got.Number)
	}
	tr, attrs, err := parseIPsecTransform(got.Protocol, &got.Transforms[0])
	if err != nil {
		return fmt.Errorf("%w: %v", errNoProposal, err)
	}
	wantTr, wantAttrs, _ := parseIPsecTransform(mine.Protocol, &mine.Transforms[0])
	if tr != wantTr || attrs.Group != wantAttrs.Group || !encapOK(q.sa, attrs.Encap) {
		return fmt.Errorf("%w: the responder changed the proposal", errNoProposal)
	}
	q.tr, q.attrs = tr, attrs
	own := q.lifetime
	if err := attrs.Lifetime.CheckMinimum(own); err != nil {
		// As a responder refuses one (quickmode_responder.go: choose).
		q.d.sendNotify(q.sa, NotifyNoProposalChosen, got.Protocol, got.SPI)
		return fmt.Errorf("%w: the responder's SA %w", errNoProposal, err)
	}
	q.lifetime = ike.LesserLifetime(q.lifetime, attrs.Lifetime)
	q.peerSPI = binary.BigEndian.Uint32(got.SPI)
	q.ourSPI = binary.BigEndian.Uint32(mine.SPI)
	for _, np := range m.All(PayloadNotify) {
		if n, err := ParseNotify(np.Body); err == nil && n.Type == NotifyResponderLifetime {
			lt, err := parseResponderLifetime(n)
			if err == nil {
				err = lt.CheckMinimum(own)
			}
			if err != nil {
				q.d.sendNotify(q.sa, NotifyNoProposalChosen, got.Protocol, got.SPI)
				return fmt.Errorf("%w: the responder's lifetime %w", errNoProposal, err)
			}
			q.lifetime = ike.LesserLifetime(q.lifetime, lt)
		}
	}
	return q.dhShared(m)
}
