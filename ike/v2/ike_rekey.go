package v2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ismgw/ism/ike"
)

// Rekeying the IKE SA (RFC 7296 §1.3.2, §2.8, §2.18), make before break:
//
//	HDR, SK {SA, Ni, KEi}  -->
//	                   <--  HDR, SK {SA, Nr, KEr}
//
// The SA payload's proposals carry the new SPI of their sender (8 octets);
// the one who starts the rekey is the original initiator of the new IKE
// SA. Its keys come from the old SA's SK_d and a fresh Diffie-Hellman
// (§2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the old
// SA's PRF; the rest with the new SA's, SPIs and nonces as in §2.14), its
// message IDs start at 0. The child SAs move to the new IKE SA without a
// word to the Installer; then the initiator deletes the old IKE SA, "the
// last request sent over the old IKE SA" (§2.8). Both ends rekey at 80 to
// 90 % of their policy's lifetime, as ike/v1 does; whoever comes first.
//
// Collisions (§2.8.2): when both ends start at once, each answers the
// other's request while its own is out; once both exchanges are done,
// three IKE SAs exist. The new one whose exchange holds the lowest of the
// four nonces is deleted by the end that created it; the other inherits
// the child SAs, and its creator deletes the old one. An end that
// finished its rekey before the peer's request came answers it with
// TEMPORARY_FAILURE (it is closing that SA); an end that sees the old SA
// deleted while its own rekey is out knows the peer did not notice, and
// takes the peer's new SA.

// ikeRekey is this end's rekey of an IKE SA, from its request to its
// outcome. Guarded by the old SA's mutex.
type ikeRekey struct {
	group int
	spi   uint64 // this end's SPI of the new SA
	ni    []byte
	nr    []byte // the peer's, from its response
	kex   *ike.KeyExchange
	// peer is the new IKE SA of the peer's rekey of the same SA, answered
	// while this end's request was out: a collision (§2.8.2); peerNi and
	// peerNr are the nonces of that exchange, which decide it. (An IKE SA
	// keeps no nonces.)
	peer           *ikeSA
	peerNi, peerNr []byte
}

func (rk *ikeRekey) zero() {
	if rk.kex != nil {
		rk.kex.Zero()
		rk.kex = nil
	}
}

// errSuperseded drops a rekey request the peer's own rekey made moot.
var errSuperseded = errors.New("v2: the SA to rekey is being replaced already")

// retryDelay is how long a rekey waits after TEMPORARY_FAILURE: §2.25 "MUST
// NOT immediately retry ... MUST wait so that the sender may complete
// whatever operation caused the temporary condition": 2 to 4 seconds.
func (d *Daemon) retryDelay() time.Duration {
	var b [1]byte
	d.random(b[:])
	return 2*time.Second + time.Duration(b[0])*(2*time.Second/255)
}

// armLife replaces the SA's lifetime timer with one running f after t.
// The SA's mutex must be held.
func (sa *ikeSA) armLife(t time.Duration, f func()) { sa.d.sched.arm(&sa.life, t, f) }

// armLifetime arms the established SA's lifetime timer: soft from now it
// rekeys the SA (§2.8), then it waits for the end of its lifetime,
// created+lifetime (expire). One timer, not two: a timer costs about 150
// bytes, and 10,000 tunnels have 10,000 IKE SAs; its function holds the
// SA alone (16 bytes, issue 13). The SA's mutex must be held.
func (sa *ikeSA) armLifetime(soft time.Duration) { sa.armLife(soft, sa.softLifetime) }

// softLifetime rekeys the SA at its soft lifetime and waits for the end.
func (sa *ikeSA) softLifetime() {
	sa.lock()
	defer sa.unlock()
	if sa.state == stateDead {
		return
	}
	sa.armLife(max(0, sa.createdAt().Add(sa.lifetime()).Sub(sa.d.clk.Now())), sa.expire)
	sa.rekeyIKE()
}

// rekeyIKE starts rekeying the IKE SA unless a rekey of it is under way.
// The SA's mutex must be held.
func (sa *ikeSA) rekeyIKE() {
	if sa.state != stateEstablished || sa.rk != nil || sa.unsettled {
		return
	}
	rk := &ikeRekey{group: sa.suite.group}
	sa.rk = rk
	sa.d.log.Info("rekeying IKE SA", "sa", sa.String())
	sa.requestIKERekey(rk)
}

// requestIKERekey queues the CREATE_CHILD_SA request of a rekey.
func (sa *ikeSA) requestIKERekey(rk *ikeRekey) {
	d := sa.d
	sa.request(&request{exchange: CreateChildSA, kind: reqIKERekey,
		build: func(sa *ikeSA) ([]Payload, error) {
			if sa.state != stateEstablished || sa.rk != rk {
				if sa.rk == rk {
					sa.rk = nil
				}
				return nil, errSuperseded
			}
			g, _ := ike.LookupGroup(rk.group)
			kex, err := g.GenerateKey(d.rand)
			if err != nil {
				sa.rk = nil
				return nil, err
			}
			rk.zero()
			rk.kex = kex
			rk.ni = make([]byte, nonceLen)
			d.random(rk.ni)
			d.mu.Lock()
			rk.spi = d.freeSPILocked()
			suites := rekeySuites(*sa.suite, d.cfg.suites)
			d.mu.Unlock()
			prop := ikeProposals(suites)
			for i := range prop.Proposals {
				prop.Proposals[i].SPI = binary.BigEndian.AppendUint64(nil, rk.spi)
			}
			return []Payload{{Type: PayloadSA, Body: prop.marshal()}, {Type: PayloadNonce, Body: rk.ni},
				{Type: PayloadKE, Body: (&KE{Group: uint16(rk.group), Data: kex.Public}).marshal()}}, nil
		},
		onResponse: func(sa *ikeSA, m *Message) { sa.ikeRekeyResponse(m, rk) },
		onTimeout: func(sa *ikeSA) {
			rk.zero()
			sa.rk = nil
			sa.peerGone("the peer did not answer the IKE SA rekey")
		},
	})
}

// rekeySuites is what a rekey proposes: the SA's own suite first (§2.8:
// the new SA should not differ), then the configured ones.
func rekeySuites(cur suite, configured []suite) []suite {
	cur.addkeOptional = false // the methods negotiated, required
	out := []suite{cur}
	same := func(a, b suite) bool {
		return a.encr == b.encr && a.prf.id == b.prf.id && a.integ.id == b.integ.id && a.group == b.group
	}
	for _, s := range configured {
		if !same(s, cur) {
			out = append(out, s)
		}
	}
	return out
}

// ikeRekeyResponse completes this end's rekey.
func (sa *ikeSA) ikeRekeyResponse(m *Message, rk *ikeRekey) {
	d := sa.d
	defer rk.zero()
	if sa.rk == rk {
		sa.rk = nil
	}
	if e := peerError(m); e != nil {
		switch {
		case e.Type == InvalidKEPayload && len(e.Data) == 2 && rk.peer == nil:
			if g := int(binary.BigEndian.Uint16(e.Data)); g != rk.group && d.groupAllowed(g) {
				d.count(func(c *ike.Counters) { c.InvalidKE++ })
				rk.group = g
				sa.rk = rk
				sa.requestIKERekey(rk)
				return
			}
		case rk.peer != nil:
			// The peer finished its own rekey first (§2.8.2): its new SA
			// is the one.
			d.log.Info("IKE SA rekey collision: the peer's rekey stands", "sa", sa.String(), "notify", e.Type.String())
			if e.Type == TemporaryFailure {
				d.count(func(c *ike.Counters) { c.TemporaryFailures++ })
			}
			sa.handTo(rk.peer)
			return
		case e.Type == TemporaryFailure:
			d.count(func(c *ike.Counters) { c.TemporaryFailures++ })
			t := d.clk.AfterFunc(d.retryDelay(), func() {
				sa.lock()
				defer sa.unlock()
				sa.rekeyIKE()
			})
			sa.retry = &t
			return
		}
		// NO_PROPOSAL_CHOSEN and the like: the SA lives to its hard
		// lifetime, then is set up again (expire).
		d.log.Warn("IKE SA rekey refused", "sa", sa.String(), "notify", e.Type.String())
		return
	}
	su, spiR, nr, shared, err := sa.rekeyResponse(m, rk)
	if err != nil {
		sa.rekeyCompleted(nil, err, rk)
		return
	}
	rk.nr = nr
	if len(su.addke) == 0 {
		n, err := sa.newSuccessor(true, false, rk.spi, spiR, su, rk.ni, nr, shared, nil)
		sa.rekeyCompleted(n, err, rk)
		return
	}
	// RFC 9370 §2.2.4: the additional key exchanges first.
	link, _ := m.Notify(AdditionalKeyExchange)
	sa.followupsInitiator(su.addke, link.Data, reqIKERekey, func(sa *ikeSA, secrets [][]byte, err error) {
		if err != nil {
			clear(shared)
			sa.rekeyCompleted(nil, err, rk)
			return
		}
		extra := joinSecrets(secrets)
		defer clear(extra)
		n, err := sa.newSuccessor(true, false, rk.spi, spiR, su, rk.ni, nr, shared, extra)
		sa.rekeyCompleted(n, err, rk)
	})
}

// lowestIn reports whether the lowest of four nonces is one of the first
// exchange's: §2.8.1 "an octet-by-octet comparison ... If you reach the
// end of one nonce, that nonce is the lower one", which is bytes.Compare.
func lowestIn(a1, a2, b1, b2 []byte) bool {
	low := func(x, y []byte) []byte {
		if bytes.Compare(x, y) < 0 {
			return x
		}
		return y
	}
	return bytes.Compare(low(a1, a2), low(b1, b2)) < 0
}

// rekeyResponse reads the responder's answer to this end's rekey: the
// suite it chose, its SPI and nonce, and the shared secret of the KE
// exchange.
func (sa *ikeSA) rekeyResponse(m *Message, rk *ikeRekey) (su suite, spiR uint64, nr, shared []byte, err error) {
	d := sa.d
	var saP SA
	var ke KE
	if ok, err := m.decode(PayloadSA, &saP); !ok || err != nil {
		return su, 0, nil, nil, fmt.Errorf("v2: IKE SA rekey response without a valid SA payload")
	}
	if ok, err := m.decode(PayloadKE, &ke); !ok || err != nil {
		return su, 0, nil, nil, fmt.Errorf("v2: IKE SA rekey response without a valid KE payload")
	}
	np, ok := m.Get(PayloadNonce)
	if !ok {
		return su, 0, nil, nil, fmt.Errorf("%w: IKE SA rekey response without a nonce", ErrMalformed)
	}
	if nr, err = parseNonce(np.Body); err != nil {
		return su, 0, nil, nil, err
	}
	d.mu.Lock()
	suites := rekeySuites(*sa.suite, d.cfg.suites)
	d.mu.Unlock()
	if su, err = acceptedIKE(suites, &saP); err != nil {
		return su, 0, nil, nil, err
	}
	p := saP.Proposals[0]
	if len(p.SPI) != 8 || p.Protocol != ProtoIKE {
		return su, 0, nil, nil, fmt.Errorf("%w: the new IKE SA's SPI is %d octets", ErrMalformed, len(p.SPI))
	}
	if su.group != int(ke.Group) || rk.kex == nil || su.group != rk.kex.Group().ID {
		return su, 0, nil, nil, fmt.Errorf("v2: the responder chose group %d and sent a key of group %d", su.group, ke.Group)
	}
	if shared, err = rk.kex.Shared(ke.Data); err != nil {
		return su, 0, nil, nil, err
	}
	if _, ok := m.Notify(AdditionalKeyExchange); len(su.addke) > 0 && !ok {
		clear(shared)
		return su, 0, nil, nil, fmt.Errorf("v2: IKE SA rekey response without ADDITIONAL_KEY_EXCHANGE")
	}
	return su, binary.BigEndian.Uint64(p.SPI), nr, shared, nil
}

// newSuccessor makes the new IKE SA of a rekey, with the old one's
// endpoints, identities, authentication, fragmentation and NAT state,
// derives its keys (§2.18; extra the secrets of additional key exchanges,
// RFC 9370 §2.2.4), establishes it and publishes it (unsettled: in a
// collision). Nothing moves to it yet. The old SA's mutex must be held.
func (sa *ikeSA) newSuccessor(initiator, unsettled bool, spiI, spiR uint64, su suite, ni, nr, shared, extra []byte) (*ikeSA, error) {
	d := sa.d
	n := &ikeSA{d: d, initiator: initiator, unsettled: unsettled, spiI: spiI, spiR: spiR, local: sa.local, remote: sa.remote,
		suite: d.suites.get(su), remoteID: sa.remoteID, localID: sa.localID,
		localNAT: sa.localNAT, remoteNAT: sa.remoteNAT, natt: sa.natt, forceEncap: sa.forceEncap,
		created: d.sched.nowStamp(), lastHeard: sa.lastHeard, rekeys: sa.rekeys + 1,
		// How the ends authenticated, and fragmentation (as charon's
		// inherit_pre does: RFC 7383 support is the peer's, not the SA's).
		authMethod: sa.authMethod, schemes: sa.schemes,
		frag: fragState{on: sa.frag.on, mtu: sa.frag.mtu}}
	// §2.18: the old SA's PRF makes SKEYSEED.
	seed := sa.suite.prf.sum(sa.keys.d(), shared, ni, nr, extra)
	clear(shared)
	if err := n.keysFromSeed(seed, ni, nr); err != nil {
		return nil, err
	}
	n.keys.dropAuth() // it never authenticates (§2.18)
	n.state, n.stateShadow = stateEstablished, stateEstablished
	d.mu.Lock()
	if d.sas[n.localSPI()] != nil {
		d.mu.Unlock()
		n.keys.zero()
		return nil, fmt.Errorf("v2: IKE SPI %016x in use", n.localSPI())
	}
	d.putSALocked(n)
	d.counters.IKESARekeys++
	d.mu.Unlock()
	n.lock()
	n.armTimers()
	n.unlockNested(sa)
	d.log.Info("IKE SA rekeyed", "old", sa.String(), "new", n.String(), "initiator", initiator)
	return n, nil
}

// handTo moves the SA's child SAs and its queued requests to its
// successor n and leaves the SA waiting for its Delete (§2.8). The SA's
// mutex must be held; n's is taken (the old SA's first, always).
func (sa *ikeSA) handTo(n *ikeSA) {
	d := sa.d
	if sa.rk != nil {
		sa.rk.zero()
		sa.rk = nil
	}
	n.lock()
	d.mu.Lock()
	for _, c := range sa.children {
		c.sa = n
	}
	n.unsettled = false
	d.mu.Unlock()
	n.children = append(n.children, sa.children...)
	sa.children = nil
	for _, r := range sa.win.queue {
		if r.kind != reqIKERekey && r.kind != reqIKEDelete {
			n.win.queue = append(n.win.queue, r.fresh())
		}
	}
	sa.win.queue = nil
	n.sendNext()
	n.unlockNested(sa)
	sa.successor = n
	if sa.state == stateEstablished {
		sa.setState(stateRekeyed)
		sa.awaitDelete()
	}
	stopTimers(sa.keepalive, sa.retry)
	if sa.dpd != nil {
		sa.dpd.stop()
	}
}

// unlockNested releases the mutex of an SA taken while another's (outer)
// is held: its effects run after the outer SA's, in order, once that one
// is released.
func (sa *ikeSA) unlockNested(outer *ikeSA) {
	if len(sa.fx) > 0 {
		outer.after(func() {
			sa.lock()
			sa.unlock()
		})
	}
	sa.mu.Unlock()
}

// setUnsettled marks a new IKE SA as the subject of an unresolved
// collision. Its mutex must be held.
func (sa *ikeSA) setUnsettled(v bool) {
	sa.d.mu.Lock()
	sa.unsettled = v
	sa.d.mu.Unlock()
}

// groupAllowed reports whether a configured policy has DH group g.
func (d *Daemon) groupAllowed(g int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.cfg.suites {
		if s.group == g {
			return true
		}
	}
	return false
}
