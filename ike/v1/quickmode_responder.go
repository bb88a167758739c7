package v1

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ismgw/ism/ike"
)

// quickModeResponder answers a quick mode the peer started: it finds the
// tunnel by the IKE SA's peer and the proposed selectors, matches each
// proposed transform against the tunnel's transform set in order (the
// seed), applies the PFS rules, installs the inbound SA before answering
// (so that the peer's first packets find it) and the outbound SA on
// HASH(3).
func (d *Daemon) quickModeResponder(ex *exchange, first packet) {
	q := &quickMode{d: d, ex: ex, sa: ex.sa}
	c, err := q.runResponder(first)
	q.zero()
	if err != nil {
		ex.done(nil)
		if q.tu != nil {
			d.log.Debug("quick mode refused", "peer", first.remote, "err", err)
			d.peerNegotiationFailed(q.tu, "quick mode: "+errString(err))
		} else {
			d.log.Warn("quick mode refused", "peer", first.remote, "err", err)
		}
		if c != nil {
			// QM2 went out: the peer may have installed the pair (ISM's
			// initiator does, and a rekey's switches to it when the
			// old pair goes), so it hears that this end has not.
			_ = d.inst.DeleteSA(c.in)
			if d.isEstablished(q.sa) {
				d.sendDeleteChild(q.sa, c.in)
			}
		}
		return
	}
	ex.done(nil)
}

// errNoTunnel: the proposed selectors match no tunnel with the peer.
var errNoTunnel = errors.New("v1: no tunnel for the proposed selectors")

func (q *quickMode) runResponder(first packet) (*childSA, error) {
	d := q.d
	d.mu.Lock()
	err := initIV(q.ex)
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m, err := q.open(first, q.hash1)
	if err != nil {
		d.count(func(c *ike.Counters) { c.Dropped++ })
		return nil, err
	}
	np := m.First(PayloadNonce)
	sp := m.First(PayloadSA)
	if np == nil || sp == nil {
		return nil, fmt.Errorf("%w: quick mode without SA or nonce", ErrMalformed)
	}
	q.ni = append([]byte(nil), np.Body...)
	sa, err := ParseSA(sp.Body)
	if err != nil {
		d.sendNotify(q.sa, NotifyPayloadMalformed, ProtoISAKMP, nil)
		return nil, err
	}
	if q.idci, q.idcr, q.peerSel, q.localSel, err = selectorsOf(m, q.sa); err != nil {
		d.sendNotify(q.sa, NotifyInvalidIDInformation, ProtoISAKMP, nil)
		return nil, err
	}
	if err := q.findTunnel(); err != nil {
		d.sendNotify(q.sa, NotifyInvalidIDInformation, ProtoESP, nil)
		return nil, err
	}
	prop, err := q.choose(sa)
	if err != nil {
		d.count(func(c *ike.Counters) { c.NoProposalChosen++ })
		d.sendNotify(q.sa, NotifyNoProposalChosen, ProtoESP, nil)
		return nil, err
	}
	q.lifetime = ike.LesserLifetime(q.attrs.Lifetime, q.lifetime)
	if err := q.responderKE(m); err != nil {
		d.sendNotify(q.sa, NotifyInvalidKeyInformation, ProtoESP, nil)
		return nil, err
	}
	d.mu.Lock()
	name := q.tu.cfg.Name
	d.mu.Unlock()
	spi, err := d.inst.AllocateSPI(name, q.tr.Protocol, q.sa.local.Addr())
	if err != nil {
		return nil, fmt.Errorf("v1: allocating an SPI: %w", err)
	}
	q.ourSPI = spi
	q.nr = d.nonce()
	in, out := q.userSAs()
	c := q.child()
	if err := d.inst.AddSA(c.in, in); err != nil {
		return nil, fmt.Errorf("v1: installing the inbound SA: %w", err)
	}
	q.sendQM2(prop)
	pk, err := q.ex.read(true)
	if err != nil {
		return c, err
	}
	if _, err := q.open(pk, func([]byte) []byte { return q.hash3() }); err != nil {
		return c, err
	}
	d.mu.Lock()
	q.tu.peer = q.sa.remote
	d.setSALocked(q.tu, q.sa)
	d.mu.Unlock()
	if err := d.installOutbound(c, out, nil); err != nil {
		return nil, fmt.Errorf("v1: installing the outbound SA: %w", err)
	}
	return c, nil
}

// errIKESAGone: the IKE SA was deleted (its keys zeroed) between the
// quick mode's start and its first message.
var errIKESAGone = errors.New("v1: the IKE SA was deleted")

// initIV sets the exchange's first IV from the phase 1 IV and its message
// ID. Daemon.mu must be held.
func initIV(ex *exchange) error {
	block := ex.sa.blockLocked()
	if ex.sa.dead || block == nil {
		return errIKESAGone
	}
	ex.iv = ExchangeIV(ex.sa.hash, ex.sa.p1IV, ex.msgID, block.BlockSize())
	return nil
}

// findTunnel finds the tunnel with the IKE SA's peer whose selectors
// contain the proposed ones: IDci inside its remote selector, IDcr inside
// its local selector.
func (q *quickMode) findTunnel() error {
	d := q.d
	d.mu.Lock()
	defer d.mu.Unlock()
	sa := q.sa
	var best *tunnel
	for _, tu := range d.bySource[sa.local.Addr()] {
		t := tu.cfg
		if dest := tu.dest(); dest.IsValid() && dest != sa.remote.Addr() && tu.peer.Addr() != sa.remote.Addr() {
			continue
		}
		if !t.Destination.IsValid() && !t.RemoteID.Equal(sa.remoteID) {
			continue
		}
		if !within(q.peerSel, t.RemoteSelector) || !within(q.localSel, t.LocalSelector) {
			continue
		}
		// The narrowest tunnel that contains the proposal wins.
		if best == nil || narrower(t, best.cfg) {
			best = tu
		}
	}
	if best == nil {
		return fmt.Errorf("%w: %v to %v from %v", errNoTunnel, q.peerSel, q.localSel, sa.remote.Addr())
	}
	q.tu = best
	q.lifetime = d.tunnelLifetime(best.cfg)
	best.qm = "QM_R1"
	return nil
}

// narrower reports whether tunnel a's selectors are inside b's and
// smaller.
func narrower(a, b *ike.Tunnel) bool {
	return within(a.RemoteSelector, b.RemoteSelector) && within(a.LocalSelector, b.LocalSelector) &&
		(a.RemoteSelector != b.RemoteSelector || a.LocalSelector != b.LocalSelector)
}

// choose picks the first proposed transform, in the peer's order, that
// equals a transform of the tunnel's set and whose PFS group and
// encapsulation are acceptable. It returns the proposal to echo.
func (q *quickMode) choose(sa *SA) (*Proposal, error) {
	d := q.d
	d.mu.Lock()
	set := q.tu.cfg.TransformSet
	pfs := q.tu.cfg.PFSGroup
	d.mu.Unlock()
	var why error = errNoProposal
	for _, prop := range sa.Proposals {
		if len(prop.SPI) != 4 {
			continue
		}
		for _, t := range prop.Transforms {
			tr, attrs, err := parseIPsecTransform(prop.Protocol, &t)
			if err != nil || !encapOK(q.sa, attrs.Encap) {
				continue
			}
			if err := attrs.Lifetime.CheckMinimum(q.lifetime); err != nil {
				// The bounds of the configuration's "ipsec lifetime"
				// (ipsec.MinLifetime): a longer one than this end's
				// is cut to this end's by RESPONDER-LIFETIME.
				why = fmt.Errorf("%w: the proposed SA %w", errNoProposal, err)
				continue
			}
			group, err := ike.ChoosePFSGroup(pfs, attrs.Group)
			if err != nil {
				why = fmt.Errorf("%w: %v", errNoProposal, err)
				continue
			}
			for _, mine := range set {
				if mine != tr {
					continue
				}
				q.tr, q.attrs = tr, attrs
				q.attrs.Group = group
				q.peerSPI = binary.BigEndian.Uint32(prop.SPI)
				echo := prop
				echo.Transforms = []Transform{t}
				return &echo, nil
			}
		}
	}
	return nil, why
}

// responderKE checks the peer's KE against the chosen PFS group and makes
// this end's.
func (q *quickMode) responderKE(m *Message) error {
	if q.attrs.Group == 0 {
		return q.dhShared(m)
	}
	g, ok := ike.LookupGroup(q.attrs.Group)
	if !ok {
		return fmt.Errorf("v1: PFS group %d not supported", q.attrs.Group)
	}
	k, err := g.GenerateKey(q.d.rand)
	if err != nil {
		return err
	}
	q.dh = k
	return q.dhShared(m)
}

// sendQM2 answers with the chosen proposal, this end's SPI, nonce and KE,
// the selectors as proposed, and RESPONDER-LIFETIME when this end's
// lifetime is shorter than the proposed one.
func (q *quickMode) sendQM2(prop *Proposal) {
	echo := *prop
	echo.SPI = binary.BigEndian.AppendUint32(nil, q.ourSPI)
	sa := SA{DOI: DOIIPsec, Situation: SituationIdentityOnly, Proposals: []Proposal{echo}}
	ps := []outPayload{{PayloadSA, sa.marshal()}, {PayloadNonce, q.nr}}
	if q.dh != nil {
		ps = append(ps, outPayload{PayloadKE, q.dh.Public})
	}
	if q.idci != nil {
		ps = append(ps, outPayload{PayloadID, q.idci}, outPayload{PayloadID, q.idcr})
	}
	if q.lifetime != q.attrs.Lifetime {
		ps = append(ps, outPayload{PayloadNotify, responderLifetime(echo.Protocol, q.peerSPI, q.lifetime)})
	}
	q.ex.send(q.seal(q.hash2, ps))
	q.d.mu.Lock()
	q.tu.qm = "QM_R2"
	q.d.mu.Unlock()
}
