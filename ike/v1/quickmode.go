package v1

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// quickMode is the state of one quick mode (RFC 2409 §5.5), either role,
// discarded when it ends:
//
//	HDR*, HASH(1), SA, Ni, [KE], [IDci, IDcr]  -->
//	                 <--  HDR*, HASH(2), SA, Nr, [KE], [IDci, IDcr], [N(RESPONDER-LIFETIME)]
//	HDR*, HASH(3)                              -->
type quickMode struct {
	d  *Daemon
	ex *exchange
	sa *ikeSA
	tu *tunnel

	initiator bool
	plan      *qmPlan // what this end started it for

	ni, nr   []byte
	dh       *ike.KeyExchange
	gxy      []byte
	idci     []byte // IDci and IDcr payload bodies, nil when absent
	idcr     []byte
	localSel selector.Selector
	peerSel  selector.Selector

	tr       transform.Transform
	attrs    childAttrs
	lifetime ipsec.Lifetime
	ourSPI   uint32
	peerSPI  uint32
}

func (q *quickMode) zero() {
	if q.dh != nil {
		q.dh.Zero()
	}
	clear(q.gxy)
}

func (q *quickMode) msgIDBytes() []byte {
	return binary.BigEndian.AppendUint32(nil, q.ex.msgID)
}

// hash1 is HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [ | KE ] [ | IDci | IDcr ]).
func (q *quickMode) hash1(rest []byte) []byte {
	return prf(q.sa.hash, q.sa.skeyidA(), q.msgIDBytes(), rest)
}

// hash2 is HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [ | KE ] [ | IDci | IDcr ]).
func (q *quickMode) hash2(rest []byte) []byte {
	return prf(q.sa.hash, q.sa.skeyidA(), q.msgIDBytes(), q.ni, rest)
}

// hash3 is HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
func (q *quickMode) hash3() []byte {
	return prf(q.sa.hash, q.sa.skeyidA(), []byte{0}, q.msgIDBytes(), q.ni, q.nr)
}

// seal builds and encrypts a quick mode message whose HASH covers the
// payloads after it, as hash computes.
func (q *quickMode) seal(hash func(rest []byte) []byte, ps []outPayload) []byte {
	h := hash(appendPayloads(nil, ps))
	return q.ex.sealed(ExchangeQuick, append([]outPayload{{PayloadHash, h}}, ps...))
}

// open reads the next quick mode message and checks its HASH.
func (q *quickMode) open(pk packet, hash func(rest []byte) []byte) (*Message, error) {
	h := Header(pk.data)
	if h.Exchange() != ExchangeQuick {
		return nil, fmt.Errorf("v1: %v message in a quick mode", h.Exchange())
	}
	m, err := q.ex.open(pk)
	if err != nil {
		return nil, err
	}
	if len(m.Payloads) == 0 || m.Payloads[0].Type != PayloadHash {
		return nil, errors.New("v1: quick mode message does not start with HASH")
	}
	if !hmac.Equal(m.Payloads[0].Body, hash(rawAfter(m.Payloads))) {
		return nil, errors.New("v1: quick mode HASH mismatch")
	}
	q.d.heard(q.sa)
	return m, nil
}

// keys derives the SA pair's keys: KEYMAT for the inbound SA with this
// end's SPI and for the outbound SA with the peer's (RFC 2409 §5.5), each
// split into the encryption key then the authentication key.
func (q *quickMode) keys() (in, out [2]ipsec.Key) {
	n := q.tr.CipherKeyLen() + q.tr.AuthKeyLen()
	proto := protocolID(q.tr)
	d := q.d
	d.mu.Lock()
	h, skeyidD := q.sa.hash, q.sa.skeyidD()
	d.mu.Unlock()
	split := func(spi uint32) [2]ipsec.Key {
		km := KeyMat(h, skeyidD, q.gxy, proto, spi, q.ni, q.nr, n)
		k := [2]ipsec.Key{ipsec.Key(km[:q.tr.CipherKeyLen():q.tr.CipherKeyLen()]), ipsec.Key(km[q.tr.CipherKeyLen():])}
		if len(k[0]) == 0 {
			k[0] = nil
		}
		if len(k[1]) == 0 {
			k[1] = nil
		}
		return k
	}
	return split(q.ourSPI), split(q.peerSPI)
}

// userSAs returns the inbound and outbound SAs to install.
func (q *quickMode) userSAs() (in, out ike.UserSA) {
	kin, kout := q.keys()
	d := q.d
	d.mu.Lock()
	local, remote := q.sa.local, q.sa.remote
	name := q.tu.cfg.Name
	d.mu.Unlock()
	hard := q.lifetime
	// Time rekeys run on IKE's own jittered timers. A volume rekey starts
	// when 10% of the volume is left, or 16 MiB (at most half) for small
	// volumes, which a fast flow would use up before a quick mode ends.
	soft := ipsec.Lifetime{}
	if hard.Bytes > 0 {
		soft.Bytes = hard.Bytes - max(hard.Bytes/10, min(hard.Bytes/2, 16<<20))
	}
	base := ike.UserSA{Tunnel: name, Transform: q.tr, UDPEncap: q.attrs.udp(), Soft: soft, Hard: hard,
		Local: selector.Of(q.localSel), Remote: selector.Of(q.peerSel), PFSGroup: q.attrs.Group}
	in, out = base, base
	in.Inbound = true
	in.Src, in.Dst = remote.Addr(), local.Addr()
	out.Src, out.Dst = local.Addr(), remote.Addr()
	if base.UDPEncap {
		in.SrcPort, in.DstPort = remote.Port(), local.Port()
		out.SrcPort, out.DstPort = local.Port(), remote.Port()
	}
	in.CipherKey, in.AuthKey = kin[0], kin[1]
	out.CipherKey, out.AuthKey = kout[0], kout[1]
	return in, out
}

// child returns the child SA the quick mode negotiated.
func (q *quickMode) child() *childSA {
	d := q.d
	d.mu.Lock()
	local, remote := q.sa.local.Addr(), q.sa.remote.Addr()
	d.mu.Unlock()
	p := q.tr.Protocol
	c := &childSA{tu: q.tu, ikesa: q.sa, transform: q.tr, pfs: uint16(q.attrs.Group), lifetime: q.lifetime,
		encap: q.attrs.udp(), initiator: q.initiator,
		in:  ipsec.SAID{Dst: local, SPI: q.ourSPI, Protocol: p},
		out: ipsec.SAID{Dst: remote, SPI: q.peerSPI, Protocol: p}}
	c.setSelectors(q.localSel, q.peerSel)
	return c
}

// dhShared computes the PFS shared secret from the peer's KE payload.
func (q *quickMode) dhShared(m *Message) error {
	if q.dh == nil {
		if m.First(PayloadKE) != nil && q.attrs.Group == 0 {
			return errors.New("v1: KE payload without PFS")
		}
		return nil
	}
	ke := m.First(PayloadKE)
	if ke == nil {
		return unexpectedError(PayloadKE, m)
	}
	s, err := q.dh.Shared(ke.Body)
	if err != nil {
		return err
	}
	q.gxy = s
	return nil
}

// tunnelLifetime is the lifetime a tunnel proposes: its own, or the
// global one. Daemon.mu must be held.
func (d *Daemon) tunnelLifetime(t *ike.Tunnel) ipsec.Lifetime {
	if t.Lifetime != (ipsec.Lifetime{}) {
		return t.Lifetime
	}
	return d.cfg.Lifetime
}

// responderLifetime encodes a RESPONDER-LIFETIME notify (RFC 2407
// §4.6.3.1) for the SA of SPI spi.
func responderLifetime(proto uint8, spi uint32, lt ipsec.Lifetime) []byte {
	var data []byte
	if lt.Time > 0 {
		data = appendAttr(data, Attr{ipsecLifeType, lifeTypeSeconds})
		data = appendAttr(data, Attr{ipsecLifeDuration, uint64(lt.Time.Seconds())})
	}
	if lt.Bytes > 0 {
		data = appendAttr(data, Attr{ipsecLifeType, lifeTypeKilobyte})
		data = appendAttr(data, Attr{ipsecLifeDuration, lt.Bytes / bytesPerKilobyte})
	}
	n := Notify{DOI: DOIIPsec, Protocol: proto, Type: NotifyResponderLifetime, SPI: binary.BigEndian.AppendUint32(nil, spi), Data: data}
	return n.marshal()
}

// parseResponderLifetime decodes the attributes of a RESPONDER-LIFETIME
// notify.
func parseResponderLifetime(n *Notify) (ipsec.Lifetime, error) {
	t, err := parseTransform(append([]byte{0, 0, 0, 0}, n.Data...))
	if err != nil {
		return ipsec.Lifetime{}, err
	}
	var lt ipsec.Lifetime
	var typ uint64
	for _, a := range t.Attrs {
		switch a.Type {
		case ipsecLifeType:
			typ = a.Value
		case ipsecLifeDuration:
			switch typ {
			case lifeTypeSeconds:
				lt.Time = time.Duration(min(a.Value, maxLifetimeSeconds)) * time.Second
			case lifeTypeKilobyte:
				lt.Bytes = min(a.Value, 1<<44) * bytesPerKilobyte
			}
		}
	}
	return lt, nil
}

// selectorsOf reads IDci and IDcr, or returns the IKE endpoints' hosts
// when the message has none (RFC 2409 §5.5).
func selectorsOf(m *Message, sa *ikeSA) (idci, idcr []byte, ci, cr selector.Selector, err error) {
	ids := m.All(PayloadID)
	switch len(ids) {
	case 0:
		return nil, nil, selector.Host(sa.remote.Addr()), selector.Host(sa.local.Addr()), nil
	case 2:
	default:
		return nil, nil, ci, cr, fmt.Errorf("v1: quick mode with %d ID payloads", len(ids))
	}
	pi, err := ParseID(ids[0].Body)
	if err != nil {
		return nil, nil, ci, cr, err
	}
	pr, err := ParseID(ids[1].Body)
	if err != nil {
		return nil, nil, ci, cr, err
	}
	if ci, err = selectorOf(pi); err != nil {
		return nil, nil, ci, cr, err
	}
	if cr, err = selectorOf(pr); err != nil {
		return nil, nil, ci, cr, err
	}
	return append([]byte(nil), ids[0].Body...), append([]byte(nil), ids[1].Body...), ci, cr, nil
}

// encapMode is the encapsulation mode this end proposes: UDP-encapsulated
// tunnel once NAT-T floated (RFC 3947 §5.1), tunnel otherwise.
func encapMode(sa *ikeSA) uint64 {
	if sa.natt {
		return EncapUDPTunnel
	}
	return EncapTunnel
}

// encapOK reports whether a proposed encapsulation mode suits the SA:
// tunnel mode, UDP-encapsulated only when NAT-T is in use.
func encapOK(sa *ikeSA, mode uint64) bool {
	switch mode {
	case EncapTunnel:
		return true
	case EncapUDPTunnel, encapUDPTunnelDraft:
		return sa.natt
	}
	return false
}
