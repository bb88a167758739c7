package v2

import (
	"encoding/binary"
	"fmt"

	"github.com/ismgw/ism/ike"
)

// The IKE_INTERMEDIATE exchange (RFC 9242) carrying the additional key
// exchanges of RFC 9370 §2.2.2, one each, between IKE_SA_INIT and
// IKE_AUTH:
//
//	HDR(IKE_INTERMEDIATE, MID=n), SK {KEi(n)}  -->
//	                  <--  HDR(IKE_INTERMEDIATE, MID=n), SK {KEr(n)}
//
// Message IDs are 1..N, IKE_AUTH's N+1 (RFC 9242 §3.2; the window of
// window.go numbers and checks them). Each exchange is protected with the
// keys of the one before (the IKE_SA_INIT ones first, §3.3.1); after it
// both ends compute
//
//	SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)
//	{SK_d(n) | SK_ai(n) | ... | SK_pr(n)} = prf+(SKEYSEED(n), Ni | Nr | SPIi | SPIr)
//
// (RFC 9370 §2.2.2), and fold the two messages into IntAuth with the SK_p
// keys that were in force during the exchange (RFC 9242 §3.3.2):
//
//	IntAuth_in = prf(SK_pi, IntAuth_i(n-1) | IntAuth_inA | IntAuth_inP)
//	IntAuth_rn = prf(SK_pr, IntAuth_r(n-1) | IntAuth_rnA | IntAuth_rnP)
//	IntAuth    = IntAuth_iN | IntAuth_rN | IKE_AUTH_MID
//
// which IKE_AUTH's AUTH payloads sign after the MACed ID (auth.go). A
// bad KE (the wrong method, the wrong size, an ML-KEM encapsulation key
// failing FIPS 203 §7.2) is answered with INVALID_SYNTAX and ends the IKE
// SA (draft-ietf-ipsecme-ikev2-mlkem §2.2); the initiator drops an IKE SA
// whose KEr is bad without a word (ibid.: "MUST fail the exchange ... and
// stop creating the SA").

// startIntermediate sends the next IKE_INTERMEDIATE request. The SA's
// mutex must be held.
func (sa *ikeSA) startIntermediate() {
	d := sa.d
	method := sa.suite.addke[sa.hs.intDone]
	var sent []Payload
	r := &request{exchange: IKEIntermediate}
	r.build = func(sa *ikeSA) ([]Payload, error) {
		g, _ := ike.LookupMethod(method)
		k, err := g.GenerateKey(d.rand)
		if err != nil {
			return nil, err
		}
		if sa.hs.intKex != nil {
			sa.hs.intKex.Zero()
		}
		sa.hs.intKex = k
		sent = []Payload{{Type: PayloadKE, Body: (&KE{Group: uint16(method), Data: k.Public}).marshal()}}
		return sent, nil
	}
	r.onResponse = func(sa *ikeSA, m *Message) {
		if err := sa.intermediateResponse(m, sa.header(IKEIntermediate, r.msgID, false), sent, method); err != nil {
			sa.fail(err.Error())
		}
	}
	r.onTimeout = func(sa *ikeSA) { sa.fail("the peer did not answer IKE_INTERMEDIATE") }
	sa.request(r)
}

// intermediateResponse completes the initiator's exchange n: the shared
// secret, IntAuth, the new keys; then the next exchange or IKE_AUTH.
func (sa *ikeSA) intermediateResponse(m *Message, sentHdr Header, sent []Payload, method int) error {
	k := sa.hs.intKex
	sa.hs.intKex = nil
	if k == nil {
		return fmt.Errorf("v2: IKE_INTERMEDIATE response without a key exchange of this end")
	}
	defer k.Zero()
	if e := peerError(m); e != nil {
		return fmt.Errorf("the peer answered IKE_INTERMEDIATE with %v", e.Type)
	}
	var ke KE
	if ok, err := m.decode(PayloadKE, &ke); !ok || err != nil || int(ke.Group) != method {
		return fmt.Errorf("v2: IKE_INTERMEDIATE response without a KE payload of method %d", method)
	}
	shared, err := k.Shared(ke.Data)
	if err != nil {
		return fmt.Errorf("v2: IKE_INTERMEDIATE: %w", err)
	}
	sa.foldIntAuth(intAuthData(sentHdr, sent[0].Type, marshalPayloads(nil, sent)), intAuthData(m.Header, m.inner, m.plain))
	if err := sa.addKeys(shared); err != nil {
		return err
	}
	if sa.hs.intDone < len(sa.suite.addke) {
		sa.startIntermediate()
		return nil
	}
	sa.setState(stateAuthSent)
	sa.startAuth()
	return nil
}

// intermediateResponder answers the peer's IKE_INTERMEDIATE request. The
// SA's mutex must be held.
func (sa *ikeSA) intermediateResponder(m *Message) {
	d := sa.d
	method := sa.suite.addke[sa.hs.intDone]
	refuse := func(reason string) {
		d.count(func(c *ike.Counters) { c.Malformed++ })
		sa.respond(IKEIntermediate, []Payload{notifyPayload(InvalidSyntax, nil)})
		sa.fail(reason)
	}
	var ke KE
	if ok, err := m.decode(PayloadKE, &ke); !ok || err != nil || int(ke.Group) != method {
		refuse(fmt.Sprintf("IKE_INTERMEDIATE without a KE payload of method %d", method))
		return
	}
	g, _ := ike.LookupMethod(method)
	public, shared, err := g.Respond(d.rand, ke.Data)
	if err != nil {
		refuse("IKE_INTERMEDIATE: " + err.Error())
		return
	}
	resp := []Payload{{Type: PayloadKE, Body: (&KE{Group: uint16(method), Data: public}).marshal()}}
	hdr := sa.header(IKEIntermediate, m.MessageID, true)
	// The response goes out, and is kept for retransmissions, under the
	// keys of the request (RFC 9242 §3.3.1); the new ones follow.
	sa.respond(IKEIntermediate, resp)
	sa.foldIntAuth(intAuthData(m.Header, m.inner, m.plain), intAuthData(hdr, resp[0].Type, marshalPayloads(nil, resp)))
	if err := sa.addKeys(shared); err != nil {
		sa.fail(err.Error())
	}
}

// dropOldKeys zeroes and lets go the responder's keys before the last
// IKE_INTERMEDIATE.
func (sa *ikeSA) dropOldKeys() {
	if sa.hs != nil && sa.hs.oldKeys != nil {
		sa.hs.oldKeys.zero()
		sa.hs.oldKeys = nil
	}
}

// addKeys derives the keys of the next additional key exchange from its
// shared secret (RFC 9370 §2.2.2) with the IKE SA's PRF and zeroes the
// secret and the previous keys: the initiator's at once, the responder's
// when the next request comes (until then a retransmission of the
// request just answered opens with them, dispatch.go).
func (sa *ikeSA) addKeys(shared []byte) error {
	old := sa.keys
	seed := sa.suite.prf.sum(old.d(), shared, sa.hs.ni, sa.hs.nr)
	clear(shared)
	err := sa.keysFromSeed(seed, sa.hs.ni, sa.hs.nr)
	if sa.initiator {
		old.zero()
	} else {
		sa.dropOldKeys()
		sa.hs.oldKeys = &old
	}
	sa.hs.intDone++
	sa.d.count(func(c *ike.Counters) { c.IntermediateExchanges++ })
	return err
}

// foldIntAuth adds an exchange's request and response, as intAuthData
// gives them, to IntAuth_i and IntAuth_r with the SK_p keys in force.
func (sa *ikeSA) foldIntAuth(req, resp []byte) {
	p := sa.suite.prf
	sa.hs.intAuthI = p.sum(sa.keys.pi(), sa.hs.intAuthI, req)
	sa.hs.intAuthR = p.sum(sa.keys.pr(), sa.hs.intAuthR, resp)
}

// intAuth returns IntAuth for the AUTH payloads of the IKE_AUTH exchange
// with message ID authMID: IntAuth_iN | IntAuth_rN | IKE_AUTH_MID (RFC
// 9242 §3.3.2, the Message ID as four octets in network order); nil
// without IKE_INTERMEDIATE exchanges.
func (sa *ikeSA) intAuth(authMID uint32) []byte {
	if sa.intDone() == 0 {
		return nil
	}
	out := append(append([]byte(nil), sa.hs.intAuthI...), sa.hs.intAuthR...)
	return binary.BigEndian.AppendUint32(out, authMID)
}

// intAuthData returns IntAuth_[i/r]*A | IntAuth_[i/r]*P of an
// IKE_INTERMEDIATE message whose payloads were all inside its SK payload
// (RFC 9242 §3.3.2): the IKE header and the SK payload's generic header,
// their Length and Payload Length adjusted to leave out the IV, padding,
// Pad Length and checksum, followed by the plaintext of the inner
// payloads. first is the inner payloads' first type (the SK header's Next
// Payload). It is the same whatever cipher protects the message and
// whether or not it was fragmented.
func intAuthData(h Header, first PayloadType, plain []byte) []byte {
	h.Next = PayloadSK
	h.Length = uint32(HeaderSize + payloadHeaderSize + len(plain))
	b := h.marshal(make([]byte, 0, h.Length))
	b = append(b, byte(first), 0)
	b = binary.BigEndian.AppendUint16(b, uint16(payloadHeaderSize+len(plain)))
	return append(b, plain...)
}
