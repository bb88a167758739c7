package v2

import (
	"encoding/binary"
	"net/netip"
	"sort"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
)

// The responder's side of a child SA: in IKE_AUTH and in CREATE_CHILD_SA
// (RFC 7296 §1.3.1, §1.3.3). The tunnel is the first of the peer's whose
// selectors meet the peer's traffic selectors (narrowed, §2.9; none:
// TS_UNACCEPTABLE); the proposal the first entry of its transform set the
// peer offers (none: NO_PROPOSAL_CHOSEN); in CREATE_CHILD_SA the DH group
// follows the seed's PFS rules and a KE of another group is answered with
// INVALID_KE_PAYLOAD naming the chosen one (§1.3). A rekey (REKEY_SA)
// keeps the old child's tunnel; the initiator deletes the old child.

// createChildResponder handles a CREATE_CHILD_SA request.
func (sa *ikeSA) createChildResponder(m *Message) {
	d := sa.d
	var saP SA
	if ok, err := m.decode(PayloadSA, &saP); !ok || err != nil {
		sa.respond(CreateChildSA, []Payload{notifyPayload(InvalidSyntax, nil)})
		return
	}
	if saP.Proposals[0].Protocol == ProtoIKE {
		sa.rekeyIKEResponder(m, &saP)
		return
	}
	if sa.win.outstanding(reqIKERekey) {
		// §2.25.2: "If a peer receives a request to rekey a Child SA when
		// it is currently rekeying the IKE SA, it SHOULD reply with
		// TEMPORARY_FAILURE"; a new child waits for the new IKE SA too
		// (§1.3.2).
		sa.temporaryFailure()
		return
	}
	np, ok := m.Get(PayloadNonce)
	ni, err := parseNonce(np.Body)
	if !ok || err != nil {
		sa.respond(CreateChildSA, []Payload{notifyPayload(InvalidSyntax, nil)})
		return
	}
	var old *childSA
	if n, ok := m.Notify(RekeySA); ok {
		if len(n.SPI) == 4 {
			old = sa.childByOut(n.Protocol, binary.BigEndian.Uint32(n.SPI))
		}
		if old == nil {
			// §2.25: CHILD_SA_NOT_FOUND, with the SPI of REKEY_SA.
			sa.respond(CreateChildSA, []Payload{{Type: PayloadNotify,
				Body: (&Notify{Protocol: n.Protocol, SPI: n.SPI, Type: ChildSANotFound}).marshal()}})
			return
		}
		if old.replaced {
			// §2.25.1: a child this end is closing (its own rekey of it
			// is done: the peer did not notice the collision).
			sa.temporaryFailure()
			return
		}
	}
	d.mu.Lock()
	var cands []ike.Tunnel
	if old != nil {
		if tu := d.tunnels[old.tunnel]; tu != nil {
			cands = []ike.Tunnel{*tu.cfg}
		}
	} else {
		cands = d.childCandidates(sa.local.Addr(), sa.remote.Addr(), sa.remoteID, m)
	}
	d.mu.Unlock()
	nr := make([]byte, nonceLen)
	d.random(nr)
	child, c, later := sa.respondChild(m, cands, true, ni, nr, old)
	collision := func(sa *ikeSA, c *childSA) {
		if old != nil && old.rekeying {
			// Both ends rekey the child at once (§2.8.1): the nonces
			// decide when this end's answer comes (acceptChild).
			d.log.Info("child SA rekey collision", "tunnel", old.tunnel, "spi", hexSPI(old.in.SPI))
			old.rekeyState().collision = &childCollision{peer: c, ni: ni, nr: nr}
			d.count(func(c *ike.Counters) { c.RekeyCollisions++ })
		}
	}
	switch {
	case later != nil:
		// RFC 9370 §2.2.4: the child comes after IKE_FOLLOWUP_KE.
		f := &followupR{methods: later.methods, secrets: later.secrets,
			finish: func(sa *ikeSA, secrets [][]byte) { collision(sa, later.finish(sa, secrets)) }}
		child = append(child, sa.awaitFollowup(f))
	case c == nil:
		sa.respond(CreateChildSA, child)
		return
	default:
		collision(sa, c)
	}
	sa.respond(CreateChildSA, append([]Payload{{Type: PayloadNonce, Body: nr}}, child...))
}

// respondChild chooses a tunnel and proposal for a child SA request,
// installs the child and returns the payloads of the answer and the
// child; on refusal, the error notify and nil. withKE is set in
// CREATE_CHILD_SA; ni and nr are the exchange's nonces. With additional
// key exchanges (RFC 9370 §2.2.4) the child is not made yet: later is
// their state, whose finish makes it (and returns it).
func (sa *ikeSA) respondChild(m *Message, cands []ike.Tunnel, withKE bool, ni, nr []byte, old *childSA) (ps []Payload, c *childSA, later *childFollowup) {
	d := sa.d
	refuse := func(t NotifyType, data []byte) ([]Payload, *childSA, *childFollowup) {
		d.count(func(c *ike.Counters) {
			if t == NoProposalChosen {
				c.NoProposalChosen++
			}
			if t == InvalidKEPayload {
				c.InvalidKE++
			}
		})
		d.log.Info("child SA refused", "remote", sa.remote, "notify", t.String())
		return []Payload{notifyPayload(t, data)}, nil, nil
	}
	var saP SA
	var tsi, tsr TS
	okSA, errSA := m.decode(PayloadSA, &saP)
	okI, errI := m.decode(PayloadTSi, &tsi)
	okR, errR := m.decode(PayloadTSr, &tsr)
	if !okSA || !okI || !okR || errSA != nil || errI != nil || errR != nil {
		return refuse(InvalidSyntax, nil)
	}
	_, transport := m.Notify(UseTransportMode)
	tun, rs, ls := chooseTunnel(cands, tsi.Selectors, tsr.Selectors)
	if tun == nil {
		return refuse(TSUnacceptable, nil)
	}
	if tun.SAMode == ipsec.Transport && !transport {
		return refuse(NoProposalChosen, nil) // the tunnel wants transport mode; the peer did not ask
	}
	transport = tun.SAMode == ipsec.Transport
	ch, ok := chooseChild(tun.TransformSet, tun.ESN, tun.PFSGroup, withKE, sa.suite.addke, &saP)
	if !ok {
		return refuse(NoProposalChosen, nil)
	}
	var payloads []Payload
	var gir []byte
	if ch.pfs != 0 {
		var ke KE
		if ok, err := m.decode(PayloadKE, &ke); !ok || err != nil || int(ke.Group) != ch.pfs {
			return refuse(InvalidKEPayload, binary.BigEndian.AppendUint16(nil, uint16(ch.pfs)))
		}
		g, _ := ike.LookupGroup(ch.pfs)
		kex, err := g.GenerateKey(d.rand)
		if err != nil {
			return refuse(NoProposalChosen, nil)
		}
		gir, err = kex.Shared(ke.Data)
		kex.Zero()
		if err != nil {
			return refuse(InvalidSyntax, nil)
		}
		payloads = append(payloads, Payload{Type: PayloadKE, Body: (&KE{Group: uint16(ch.pfs), Data: kex.Public}).marshal()})
	}
	spi, err := d.inst.AllocateSPI(tun.Name, ch.t.Protocol, sa.local.Addr())
	if err != nil {
		return refuse(NoAdditionalSAs, nil)
	}
	d.mu.Lock()
	lifetime := d.lifetimeFor(tun)
	d.mu.Unlock()
	mode := ipsec.Tunnel
	if transport {
		mode = ipsec.Transport
		payloads = append([]Payload{notifyPayload(UseTransportMode, nil)}, payloads...)
	}
	mk := func(sa *ikeSA, extra []byte) *childSA {
		km := childKeymat(sa.suite.prf, sa.keys.d(), gir, ni, nr, extra, keymatLen(ch.t))
		clear(gir)
		keys := splitKeymat(km, ch.t, false)
		clear(km)
		c := &childSA{sa: sa, tunnel: tun.Name, transform: ch.t, mode: mode, esn: ch.esn, encap: sa.encap(),
			local: ls, remote: rs, pfs: ch.pfs, lifetime: lifetime,
			in:  ipsec.SAID{Dst: sa.local.Addr(), SPI: spi, Protocol: ch.t.Protocol},
			out: ipsec.SAID{Dst: sa.remote.Addr(), SPI: ch.peerSPI, Protocol: ch.t.Protocol}}
		if old != nil && !old.rekeying {
			c.rekeyState().successorOf = old // the peer's rekey, no collision
		}
		sa.install(c, keys, nil)
		return c
	}
	payloads = append(payloads, Payload{Type: PayloadSA, Body: ch.proposal(spi).marshal()},
		Payload{Type: PayloadTSi, Body: tsPayload(netip.Addr{}, rs)}, Payload{Type: PayloadTSr, Body: tsPayload(netip.Addr{}, ls)})
	// The SA payload leads the child payloads in §1.3's diagrams; order
	// does not matter on the wire (§2.5) beyond SK being last.
	if len(ch.addke) > 0 {
		return payloads, nil, &childFollowup{methods: ch.addke, secrets: [][]byte{gir},
			finish: func(sa *ikeSA, secrets [][]byte) *childSA {
				extra := joinSecrets(secrets[1:])
				defer clear(extra)
				return mk(sa, extra)
			}}
	}
	return payloads, mk(sa, nil), nil
}

// chooseTunnel picks the tunnel of a child SA the peer proposes with
// traffic selectors tsi (the peer's side) and tsr (this end's), and the
// selectors it narrows them to: a tunnel whose selectors are the peer's
// exactly comes first; then the first that holds the packet the peer put
// first (§2.9); then the first the proposal meets at all. nil: none.
func chooseTunnel(cands []ike.Tunnel, tsi, tsr []TrafficSelector) (*ike.Tunnel, selector.Set, selector.Set) {
	hi, okI := hint(tsi)
	hr, okR := hint(tsr)
	for pass := range 3 {
		for i := range cands {
			t := &cands[i]
			r, ok1 := narrow(t.RemoteSelector, tsi)
			l, ok2 := narrow(t.LocalSelector, tsr)
			if !ok1 || !ok2 {
				continue
			}
			exact := exactly(t, r, l, tsi, tsr)
			holds := okI && okR && r.Contains(hi) && l.Contains(hr)
			if exact || pass == 1 && holds || pass == 2 {
				return t, r, l
			}
		}
	}
	return nil, nil, nil
}

// exactly reports whether the peer's traffic selectors, narrowed to r and
// l, are the tunnel's own selectors and nothing else: chooseTunnel's first
// choice.
func exactly(t *ike.Tunnel, r, l selector.Set, tsi, tsr []TrafficSelector) bool {
	s, okI := single(tsi)
	d, okR := single(tsr)
	return r.Is(t.RemoteSelector) && l.Is(t.LocalSelector) && okI && okR && s == t.RemoteSelector && d == t.LocalSelector
}

// single returns the selector of a list of traffic selectors that holds
// one, the packet's hint aside (§2.9).
func single(ts []TrafficSelector) (selector.Selector, bool) {
	if _, ok := hint(ts); ok {
		ts = ts[1:]
	}
	if len(ts) != 1 {
		return selector.Selector{}, false
	}
	return tsSelector(ts[0].Start, ts[0].End), true
}

// childFollowup is a child SA waiting for its additional key exchanges.
type childFollowup struct {
	methods []int
	secrets [][]byte
	finish  func(sa *ikeSA, secrets [][]byte) *childSA
}

// sortTunnels orders tunnels by name, so that the choice among several
// is the same every time.
func sortTunnels(ts []ike.Tunnel) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
}
