package v2

import (
	"fmt"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
)

// Additional key exchanges after a CREATE_CHILD_SA (RFC 9370 §2.2.4): an
// IKE SA rekey, or a child SA made or rekeyed with PFS, whose SA payload
// negotiated ADDKE transforms carries the first key exchange in the
// CREATE_CHILD_SA itself and one IKE_FOLLOWUP_KE exchange (type 44) for
// each additional one, linked by ADDITIONAL_KEY_EXCHANGE notifies whose
// data the responder chooses:
//
//	HDR(CREATE_CHILD_SA), SK {SA, Ni, KEi}  -->
//	          <--  HDR(CREATE_CHILD_SA), SK {SA, Nr, KEr, N(ADDITIONAL_KEY_EXCHANGE)(link1)}
//	HDR(IKE_FOLLOWUP_KE), SK {KEi(1), N(ADDITIONAL_KEY_EXCHANGE)(link1)}  -->
//	          <--  HDR(IKE_FOLLOWUP_KE), SK {KEr(1), [N(ADDITIONAL_KEY_EXCHANGE)(link2)]}
//
// The keys come from all the shared secrets once the last exchange is
// done, the nonces after the first one's:
//
//	SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr | SK(1) | ... | SK(n))    (IKE SA rekey)
//	KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n))           (child SA)
//
// A responder forgets an exchange whose next IKE_FOLLOWUP_KE does not
// come within followupWait (§2.2.4: "MUST handle this situation
// gracefully and delete the associated state"); one that does not know a
// link answers STATE_NOT_FOUND. An initiator whose follow-up fails drops
// what the CREATE_CHILD_SA started (the new IKE SA or child SA never
// exists).

// followupWait is how long a responder keeps the state of an unfinished
// series of additional key exchanges (§2.2.4: "5 to 20 seconds").
const followupWait = 20 * time.Second

// linkLen is the length of this end's ADDITIONAL_KEY_EXCHANGE data.
const linkLen = 8

// followupR is the responder's state of a series of additional key
// exchanges: the methods still to do, the secrets so far (SK(0) first)
// and what to do with them. Guarded by the SA's mutex.
type followupR struct {
	methods []int
	secrets [][]byte
	// finish makes the SA of the exchange from the secrets; the SA's
	// mutex is held.
	finish func(sa *ikeSA, secrets [][]byte)
	timer  clock.Timer
}

func (f *followupR) zero() {
	for _, s := range f.secrets {
		clear(s)
	}
	if f.timer != nil {
		f.timer.Stop()
	}
}

// awaitFollowup registers f under a fresh link and returns the
// ADDITIONAL_KEY_EXCHANGE notify for the response that announces it. The
// SA's mutex must be held.
func (sa *ikeSA) awaitFollowup(f *followupR) Payload {
	link := make([]byte, linkLen)
	sa.d.random(link)
	if sa.followups == nil {
		sa.followups = map[string]*followupR{}
	}
	key := string(link)
	sa.followups[key] = f
	f.timer = sa.d.clk.AfterFunc(followupWait, func() {
		sa.lock()
		defer sa.unlock()
		if sa.followups[key] == f {
			delete(sa.followups, key)
			f.zero()
			sa.d.log.Info("additional key exchange abandoned by the peer", "sa", sa.String())
		}
	})
	return notifyPayload(AdditionalKeyExchange, link)
}

// followupResponder answers an IKE_FOLLOWUP_KE request. The SA's mutex
// must be held.
func (sa *ikeSA) followupResponder(m *Message) {
	d := sa.d
	n, ok := m.Notify(AdditionalKeyExchange)
	f := sa.followups[string(n.Data)]
	if !ok || f == nil {
		sa.respond(IKEFollowupKE, []Payload{notifyPayload(StateNotFound, nil)})
		return
	}
	delete(sa.followups, string(n.Data))
	f.timer.Stop()
	method := f.methods[0]
	var ke KE
	if ok, err := m.decode(PayloadKE, &ke); !ok || err != nil || int(ke.Group) != method {
		f.zero()
		d.count(func(c *ike.Counters) { c.Malformed++ })
		sa.respond(IKEFollowupKE, []Payload{notifyPayload(InvalidSyntax, nil)})
		return
	}
	g, _ := ike.LookupMethod(method)
	public, shared, err := g.Respond(d.rand, ke.Data)
	if err != nil {
		f.zero()
		d.count(func(c *ike.Counters) { c.Malformed++ })
		sa.respond(IKEFollowupKE, []Payload{notifyPayload(InvalidSyntax, nil)})
		return
	}
	d.count(func(c *ike.Counters) { c.FollowupKEExchanges++ })
	f.secrets = append(f.secrets, shared)
	f.methods = f.methods[1:]
	ps := []Payload{{Type: PayloadKE, Body: (&KE{Group: uint16(method), Data: public}).marshal()}}
	if len(f.methods) > 0 {
		sa.respond(IKEFollowupKE, append(ps, sa.awaitFollowup(f)))
		return
	}
	sa.respond(IKEFollowupKE, ps)
	f.finish(sa, f.secrets)
	f.zero()
}

// followupsInitiator runs this end's IKE_FOLLOWUP_KE exchanges for the
// methods, the first linked by link, then calls done with their secrets
// in order (or an error). Each request goes before any other queued one.
// The SA's mutex must be held.
func (sa *ikeSA) followupsInitiator(methods []int, link []byte, kind reqKind, done func(sa *ikeSA, secrets [][]byte, err error)) {
	var secrets [][]byte
	var next func(i int, link []byte)
	fail := func(sa *ikeSA, err error) {
		for _, s := range secrets {
			clear(s)
		}
		done(sa, nil, err)
	}
	next = func(i int, link []byte) {
		method := methods[i]
		var kex *ike.KeyExchange
		r := &request{exchange: IKEFollowupKE, kind: kind,
			build: func(sa *ikeSA) ([]Payload, error) {
				g, _ := ike.LookupMethod(method)
				k, err := g.GenerateKey(sa.d.rand)
				if err != nil {
					fail(sa, err)
					return nil, err
				}
				kex = k
				return []Payload{{Type: PayloadKE, Body: (&KE{Group: uint16(method), Data: k.Public}).marshal()},
					notifyPayload(AdditionalKeyExchange, link)}, nil
			},
			onResponse: func(sa *ikeSA, m *Message) {
				defer kex.Zero()
				if e := peerError(m); e != nil {
					fail(sa, fmt.Errorf("the peer answered IKE_FOLLOWUP_KE with %v", e.Type))
					return
				}
				var ke KE
				if ok, err := m.decode(PayloadKE, &ke); !ok || err != nil || int(ke.Group) != method {
					fail(sa, fmt.Errorf("v2: IKE_FOLLOWUP_KE response without a KE payload of method %d", method))
					return
				}
				s, err := kex.Shared(ke.Data)
				if err != nil {
					fail(sa, fmt.Errorf("v2: IKE_FOLLOWUP_KE: %w", err))
					return
				}
				sa.d.count(func(c *ike.Counters) { c.FollowupKEExchanges++ })
				secrets = append(secrets, s)
				if i+1 == len(methods) {
					done(sa, secrets, nil)
					return
				}
				n, ok := m.Notify(AdditionalKeyExchange)
				if !ok {
					fail(sa, fmt.Errorf("v2: IKE_FOLLOWUP_KE response without the next ADDITIONAL_KEY_EXCHANGE"))
					return
				}
				next(i+1, n.Data)
			},
			onTimeout: func(sa *ikeSA) {
				fail(sa, fmt.Errorf("the peer did not answer IKE_FOLLOWUP_KE"))
				sa.peerGone("the peer did not answer IKE_FOLLOWUP_KE")
			},
		}
		sa.requestFirst(r)
	}
	next(0, link)
}

// requestFirst queues r before every other queued request: the next
// exchange of a series. The SA's mutex must be held.
func (sa *ikeSA) requestFirst(r *request) {
	if sa.state == stateDead {
		return
	}
	sa.win.queue = append([]*request{r}, sa.win.queue...)
	sa.sendNext()
}

// joinSecrets returns SK(1) | ... | SK(n), what follows the nonces in
// SKEYSEED and KEYMAT (RFC 9370 §2.2.4); nil without any.
func joinSecrets(secrets [][]byte) []byte {
	var out []byte
	for _, s := range secrets {
		out = append(out, s...)
	}
	return out
}
