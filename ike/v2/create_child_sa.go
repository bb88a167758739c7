package v2

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
)

// The initiator's CREATE_CHILD_SA for a new child SA (§1.3.1) or the
// rekey of one (§1.3.3, §2.8):
//
//	HDR, SK {[N(REKEY_SA),] [N(USE_TRANSPORT_MODE),] SA, Ni, [KEi,] TSi, TSr}  -->
//	                    <--  HDR, SK {SA, Nr, [KEr,] TSi, TSr}
//
// KEi goes when the tunnel has a PFS group. A rekey installs the new
// child, then retires the old one (child.go: make before break).
// Collisions with the peer's rekey of the same child: child_collision.go.

// childExchange is what a child SA negotiation keeps between request
// and response.
type childExchange struct {
	tunnel        *ike.Tunnel // the configuration's, shared
	offer         childOffer
	ni, nr        []byte // this end's nonce; in IKE_AUTH, both of IKE_SA_INIT
	kex           *ike.KeyExchange
	replaces      *childSA
	local, remote selector.Set // proposed
	src, dst      netip.Addr   // proposed first: the packet's (§2.9), when valid
	// fail reports a negotiation that failed after its CREATE_CHILD_SA,
	// in IKE_FOLLOWUP_KE (nil in IKE_AUTH, which has none).
	fail func(sa *ikeSA, reason string)
}

// createChild queues a CREATE_CHILD_SA for a tunnel; with old set, it
// rekeys that child. The SA's mutex must be held.
func (sa *ikeSA) createChild(name string, old *childSA) {
	d := sa.d
	d.mu.Lock()
	tu := d.tunnels[name]
	var cx childExchange
	if tu != nil {
		cx.tunnel = tu.cfg
		cx.local, cx.remote, cx.src, cx.dst = tu.proposalFor()
	}
	d.mu.Unlock()
	if tu == nil {
		return
	}
	if old != nil {
		// §2.8: the new child has the old one's selectors.
		cx.local, cx.remote, cx.src, cx.dst = old.local, old.remote, netip.Addr{}, netip.Addr{}
	}
	sa.createChildGroup(cx, old, cx.tunnel.PFSGroup)
}

// createChildGroup queues the CREATE_CHILD_SA of a proposal with a KE of
// the given group (0: none).
func (sa *ikeSA) createChildGroup(proposal childExchange, old *childSA, pfs int) {
	d := sa.d
	t := proposal.tunnel
	cx := &childExchange{tunnel: t, replaces: old, local: proposal.local, remote: proposal.remote, src: proposal.src, dst: proposal.dst}
	fail := func(sa *ikeSA, reason string) {
		if old != nil {
			sa.rekeyFailed(old, reason)
			return
		}
		sa.after(func() { d.negotiationFailed(t.Name, sa.remote.Addr(), reason) })
	}
	cx.fail = fail
	sa.request(&request{exchange: CreateChildSA, kind: reqChild,
		build: func(sa *ikeSA) ([]Payload, error) {
			if old != nil && (old.dead || old.replaced || old.collision() != nil) {
				old.rekeying = false
				return nil, fmt.Errorf("v2: the child SA to rekey is gone or rekeyed by the peer")
			}
			var err error
			if cx.offer, err = sa.offerFor(t, pfs); err != nil {
				fail(sa, err.Error())
				return nil, err
			}
			if pfs != 0 {
				cx.offer.addke = sa.suite.addke // RFC 9370 §2.2.4
			}
			cx.ni = make([]byte, nonceLen)
			d.random(cx.ni)
			var ps []Payload
			if old != nil {
				n := Notify{Protocol: protocolOf(old.transform), SPI: spiBytes(old.in.SPI), Type: RekeySA}
				ps = append(ps, Payload{Type: PayloadNotify, Body: n.marshal()})
			}
			cp := childPayloads(t, cx.offer, cx.local, cx.remote, cx.src, cx.dst)
			ps = append(ps, cp[:len(cp)-2]...) // [N(USE_TRANSPORT_MODE),] SA
			ps = append(ps, Payload{Type: PayloadNonce, Body: cx.ni})
			if pfs != 0 {
				g, _ := ike.LookupGroup(pfs)
				if cx.kex, err = g.GenerateKey(d.rand); err != nil {
					return nil, err
				}
				ps = append(ps, Payload{Type: PayloadKE, Body: (&KE{Group: uint16(pfs), Data: cx.kex.Public}).marshal()})
			}
			return append(ps, cp[len(cp)-2:]...), nil // TSi, TSr
		},
		onResponse: func(sa *ikeSA, m *Message) {
			defer func() {
				if cx.kex != nil {
					cx.kex.Zero()
				}
			}()
			if e := peerError(m); e != nil {
				if e.Type == InvalidKEPayload && len(e.Data) == 2 {
					g := int(binary.BigEndian.Uint16(e.Data))
					if _, err := ike.ChoosePFSGroup(t.PFSGroup, g); err == nil && g != pfs && g != 0 {
						d.count(func(c *ike.Counters) { c.InvalidKE++ })
						sa.createChildGroup(*cx, old, g)
						return
					}
				}
				if e.Type == NoProposalChosen {
					d.count(func(c *ike.Counters) { c.NoProposalChosen++ })
				}
				if sa.childRefused(t, old, e.Type) {
					return
				}
				fail(sa, "CREATE_CHILD_SA refused: "+e.Type.String())
				return
			}
			if err := sa.acceptChild(m, cx); err != nil {
				fail(sa, err.Error())
			}
		},
		onTimeout: func(sa *ikeSA) {
			fail(sa, "the peer did not answer CREATE_CHILD_SA")
			sa.peerGone("the peer did not answer CREATE_CHILD_SA")
		},
		onDrop: fail,
	})
}

// acceptChild processes the responder's answer to a child SA proposal:
// the chosen proposal, the narrowed selectors, the mode, the keys; and
// installs the child.
func (sa *ikeSA) acceptChild(m *Message, cx *childExchange) error {
	d := sa.d
	var saP SA
	var tsi, tsr TS
	for _, x := range []struct {
		t PayloadType
		v payloadBody
	}{{PayloadSA, &saP}, {PayloadTSi, &tsi}, {PayloadTSr, &tsr}} {
		if ok, err := m.decode(x.t, x.v); !ok || err != nil {
			return fmt.Errorf("v2: %v response without a valid %v payload", m.Exchange, x.t)
		}
	}
	ch, err := acceptedChild(cx.offer, &saP)
	if err != nil {
		return err
	}
	local, ok1 := within(cx.local, tsi.Selectors)
	remote, ok2 := within(cx.remote, tsr.Selectors)
	if !ok1 || !ok2 {
		sa.sendDeleteSPI(ch, cx.offer)
		return fmt.Errorf("v2: the responder's traffic selectors are not within this end's")
	}
	_, transport := m.Notify(UseTransportMode)
	if transport != (cx.tunnel.SAMode == ipsec.Transport) {
		sa.sendDeleteSPI(ch, cx.offer)
		return fmt.Errorf("v2: the responder did not agree to %v mode", cx.tunnel.SAMode)
	}
	nr := cx.nr // IKE_AUTH's
	if m.Exchange == CreateChildSA {
		np, ok := m.Get(PayloadNonce)
		if !ok {
			return fmt.Errorf("%w: CREATE_CHILD_SA response without a nonce", ErrMalformed)
		}
		if nr, err = parseNonce(np.Body); err != nil {
			return err
		}
	}
	var gir []byte
	if ch.pfs != 0 {
		var ke KE
		if ok, err := m.decode(PayloadKE, &ke); !ok || err != nil || int(ke.Group) != ch.pfs || cx.kex == nil {
			return fmt.Errorf("v2: CREATE_CHILD_SA response without a KE payload of group %d", ch.pfs)
		}
		if gir, err = cx.kex.Shared(ke.Data); err != nil {
			return err
		}
	}
	d.mu.Lock()
	lifetime := d.lifetimeFor(cx.tunnel)
	d.mu.Unlock()
	finish := func(sa *ikeSA, extra []byte) {
		km := childKeymat(sa.suite.prf, sa.keys.d(), gir, cx.ni, nr, extra, keymatLen(ch.t))
		clear(gir)
		if old := cx.replaces; old != nil && old.collision() != nil && sa.collisionLost(old, cx.ni, nr, ch, cx.offer) {
			clear(km)
			return
		}
		keys := splitKeymat(km, ch.t, true)
		clear(km)
		c := &childSA{sa: sa, tunnel: cx.tunnel.Name, transform: ch.t, mode: cx.tunnel.SAMode, esn: ch.esn,
			encap: sa.encap(), local: local, remote: remote, initiator: true, pfs: ch.pfs, lifetime: lifetime,
			in:  ipsec.SAID{Dst: sa.local.Addr(), SPI: cx.offer.spis[ch.t.Protocol], Protocol: ch.t.Protocol},
			out: ipsec.SAID{Dst: sa.remote.Addr(), SPI: ch.peerSPI, Protocol: ch.t.Protocol}}
		sa.install(c, keys, cx.replaces)
	}
	if len(ch.addke) == 0 {
		finish(sa, nil)
		return nil
	}
	// RFC 9370 §2.2.4: the additional key exchanges before the keys.
	link, ok := m.Notify(AdditionalKeyExchange)
	if !ok {
		clear(gir)
		return fmt.Errorf("v2: CREATE_CHILD_SA response without ADDITIONAL_KEY_EXCHANGE")
	}
	sa.followupsInitiator(ch.addke, link.Data, reqChild, func(sa *ikeSA, secrets [][]byte, err error) {
		if err != nil {
			clear(gir)
			if cx.fail != nil {
				cx.fail(sa, err.Error())
			}
			return
		}
		extra := joinSecrets(secrets)
		finish(sa, extra)
		clear(extra)
	})
	return nil
}

// sendDeleteSPI deletes a child SA the responder made but this end
// refuses (§1.4.1): a Delete of the inbound SPI this end offered.
func (sa *ikeSA) sendDeleteSPI(ch childChoice, o childOffer) {
	d := Delete{Protocol: protocolOf(ch.t), SPIs: []uint32{o.spis[ch.t.Protocol]}}
	sa.request(&request{exchange: Informational, kind: reqChildDelete,
		build:      func(sa *ikeSA) ([]Payload, error) { return []Payload{{Type: PayloadDelete, Body: d.marshal()}}, nil },
		onResponse: func(sa *ikeSA, m *Message) {},
	})
}

// rekeyChild starts the rekey of a child SA before it expires, unless one
// is under way, one waits for its back-off, or it is no longer the newest
// of its selectors (the peer rekeyed it). The SA's mutex must be held.
func (sa *ikeSA) rekeyChild(c *childSA) {
	if c.dead || c.rekeying || c.replaced || c.collision() != nil || sa.state != stateEstablished {
		return
	}
	d := sa.d
	d.mu.Lock()
	tu := d.tunnels[c.tunnel]
	stale := tu != nil && tu.newest(c.local, c.remote) != c
	waits := !c.rekeys().Due(d.clk.Now())
	if !stale && !waits {
		c.rekeys().Start()
		c.inRekey = true
		if tu != nil {
			tu.attempts++
		}
	}
	d.mu.Unlock()
	if stale || waits {
		return
	}
	c.rekeying = true
	d.log.Info("rekeying child SA", "tunnel", c.tunnel, "spi", hexSPI(c.in.SPI))
	sa.createChild(c.tunnel, c)
}

// rekeyFailed records a failed rekey of c this end started and tries
// again when the back-off ends, if c lives that long. The SA's mutex must
// be held.
func (sa *ikeSA) rekeyFailed(c *childSA, reason string) {
	d := sa.d
	c.rekeying = false
	now := d.clk.Now()
	d.mu.Lock()
	c.inRekey = false
	changed := c.rekeys().Fail(now, reason, d.cfg.Backoff)
	next := c.rekeys().Next
	if tu := d.tunnels[c.tunnel]; tu != nil {
		tu.failures++
		tu.lastError = reason
	}
	d.mu.Unlock()
	if !c.dead && !c.retrying() && (c.lifetime.Time == 0 || next.Before(d.sched.time(c.created).Add(c.lifetime.Time))) {
		c.rekeyState().retry = d.clk.AfterFunc(next.Sub(now), func() {
			owner := d.lockOwner(c)
			defer owner.unlock()
			if c.rk != nil {
				c.rk.retry = nil
				c.tidy()
			}
			owner.rekeyChild(c)
		})
	}
	if !changed {
		d.log.Debug("child SA rekey failed again", "tunnel", c.tunnel, "spi", hexSPI(c.in.SPI), "reason", reason, "next_attempt", next)
		return
	}
	d.log.Warn("child SA rekey failed", "tunnel", c.tunnel, "spi", hexSPI(c.in.SPI), "reason", reason, "next_attempt", next)
	name := c.tunnel
	sa.after(func() {
		if d.lis != nil {
			d.lis.NegotiationFailed(name, "rekey: "+reason)
		}
	})
}
