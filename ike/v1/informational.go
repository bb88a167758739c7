package v1

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// Informational exchanges (RFC 2408 §4.8, RFC 2409 §5.7): notifications
// and deletes, one message, no answer. Once phase 1 has keys they are
// encrypted and authenticated with
// HASH(1) = prf(SKEYID_a, M-ID | N/D). DPD (RFC 3706) uses the same
// path: an R-U-THERE notify answered by an R-U-THERE-ACK (dpd.go).

// sealInformational returns an encrypted informational message with
// payloads ps, or a plaintext one when the SA has no keys yet, or nil
// when it was removed (sendTo sends nothing).
func (d *Daemon) sealInformational(sa *ikeSA, ps []outPayload) []byte {
	msgID := d.msgID(sa)
	d.mu.Lock()
	block, skeyidA, p1IV, h := sa.blockLocked(), sa.skeyidA(), sa.p1IV, sa.hash
	hdr := HeaderFields{ICookie: sa.icookie, RCookie: sa.rcookie, Exchange: ExchangeInformational, MessageID: msgID}
	dead := sa.dead
	d.mu.Unlock()
	if dead {
		return nil
	}
	if block == nil || skeyidA == nil {
		return encodeMessage(hdr, ps)
	}
	var id [4]byte
	binary.BigEndian.PutUint32(id[:], msgID)
	hash := prf(h, skeyidA, id[:], appendPayloads(nil, ps))
	plain := encodeMessage(hdr, append([]outPayload{{PayloadHash, hash}}, ps...))
	out, _ := encryptMessage(block, ExchangeIV(h, p1IV, msgID, block.BlockSize()), plain)
	return out
}

// sendNotify sends a notification to the peer of sa.
func (d *Daemon) sendNotify(sa *ikeSA, t NotifyType, proto uint8, spi []byte) {
	n := Notify{DOI: DOIIPsec, Protocol: proto, Type: t, SPI: spi}
	d.sendTo(sa, d.sealInformational(sa, []outPayload{{PayloadNotify, n.marshal()}}))
}

// sendDeleteIKESA tells the peer the IKE SA is deleted; the SPI is the
// pair of cookies (RFC 2408 §3.15).
func (d *Daemon) sendDeleteIKESA(sa *ikeSA) {
	spi := append(append([]byte(nil), sa.icookie[:]...), sa.rcookie[:]...)
	del := Delete{DOI: DOIIPsec, Protocol: ProtoISAKMP, SPISize: 16, SPIs: [][]byte{spi}}
	d.sendTo(sa, d.sealInformational(sa, []outPayload{{PayloadDelete, del.marshal()}}))
}

// sendDeleteChild tells the peer an SA this end receives on is deleted.
func (d *Daemon) sendDeleteChild(sa *ikeSA, id ipsec.SAID) {
	var spi [4]byte
	binary.BigEndian.PutUint32(spi[:], id.SPI)
	proto := uint8(ProtoESP)
	if id.Protocol == transform.AH {
		proto = ProtoAH
	}
	del := Delete{DOI: DOIIPsec, Protocol: proto, SPISize: 4, SPIs: [][]byte{spi[:]}}
	d.sendTo(sa, d.sealInformational(sa, []outPayload{{PayloadDelete, del.marshal()}}))
}

// openInformational decrypts an informational message and checks its
// HASH(1).
func (d *Daemon) openInformational(sa *ikeSA, pk packet) (*Message, error) {
	h := Header(pk.data)
	if h.Flags()&FlagEncryption == 0 {
		return ParseMessage(pk.data)
	}
	d.mu.Lock()
	block, skeyidA, p1IV, hash := sa.blockLocked(), sa.skeyidA(), sa.p1IV, sa.hash
	d.mu.Unlock()
	if block == nil {
		return nil, errors.New("v1: encrypted informational before keys")
	}
	m, _, err := parseEncrypted(block, ExchangeIV(hash, p1IV, h.MessageID(), block.BlockSize()), pk.data)
	if err != nil {
		return nil, err
	}
	if len(m.Payloads) == 0 || m.Payloads[0].Type != PayloadHash {
		return nil, errors.New("v1: informational without HASH(1)")
	}
	rest := rawAfter(m.Payloads)
	var id [4]byte
	binary.BigEndian.PutUint32(id[:], h.MessageID())
	if !hmac.Equal(m.Payloads[0].Body, prf(hash, skeyidA, id[:], rest)) {
		return nil, errors.New("v1: informational HASH(1) mismatch")
	}
	return m, nil
}

// rawAfter returns the raw bytes of every payload after the first, as
// received, for the quick mode and informational hashes.
func rawAfter(ps []Payload) []byte {
	var b []byte
	for _, p := range ps[1:] {
		b = append(b, p.Raw...)
	}
	return b
}

// informational handles an informational exchange from the peer.
func (d *Daemon) informational(sa *ikeSA, pk packet) {
	m, err := d.openInformational(sa, pk)
	if err != nil {
		d.count(func(c *ike.Counters) { c.Dropped++ })
		d.log.Warn("informational refused", "peer", pk.remote, "err", err)
		return
	}
	protected := Header(pk.data).Flags()&FlagEncryption != 0
	if !protected && d.isEstablished(sa) {
		d.count(func(c *ike.Counters) { c.Dropped++ }) // unauthenticated after phase 1
		return
	}
	for _, p := range m.Payloads {
		switch p.Type {
		case PayloadNotify:
			n, err := ParseNotify(p.Body)
			if err != nil {
				d.count(func(c *ike.Counters) { c.Malformed++ })
				continue
			}
			d.count(func(c *ike.Counters) { c.NotifiesReceived++ })
			d.handleNotify(sa, n, protected)
		case PayloadDelete:
			del, err := ParseDelete(p.Body)
			if err != nil {
				d.count(func(c *ike.Counters) { c.Malformed++ })
				continue
			}
			d.count(func(c *ike.Counters) { c.DeletesReceived++ })
			if protected {
				d.heard(sa)
			}
			d.handleDelete(sa, del)
		}
	}
}

// handleNotify acts on a notification; protected tells whether it came
// encrypted and authenticated under the IKE SA.
func (d *Daemon) handleNotify(sa *ikeSA, n *Notify, protected bool) {
	switch {
	case n.Type == NotifyDPDRUThere || n.Type == NotifyDPDRUThereAck:
		if !protected {
			d.count(func(c *ike.Counters) { c.Dropped++ }) // RFC 3706 §5.3: under the IKE SA only
			return
		}
		if n.Type == NotifyDPDRUThere {
			d.dpdRequest(sa, n)
		} else {
			d.dpdAck(sa, n)
		}
		return
	case protected:
		d.heard(sa)
	}
	switch {
	case n.Type == NotifyInitialContact:
		d.initialContact(sa)
	case n.Type.IsError():
		// An error answers a quick mode this end started: end it with
		// the peer's reason (matched by SPI when the notify has one).
		var spi uint32
		if len(n.SPI) == 4 {
			spi = binary.BigEndian.Uint32(n.SPI)
		}
		d.mu.Lock()
		for id, ex := range sa.exchanges {
			if id != 0 && ex.spi != 0 && (spi == 0 || spi == ex.spi) {
				ex.abort(notifyError{n.Type})
			}
		}
		if ex := sa.exchanges[0]; ex != nil {
			ex.abort(notifyError{n.Type})
		}
		d.mu.Unlock()
		d.log.Warn("peer sent an error", "peer", sa.remote, "notify", n.Type.String())
	}
}

// handleDelete acts on a delete payload.
func (d *Daemon) handleDelete(sa *ikeSA, del *Delete) {
	switch del.Protocol {
	case ProtoISAKMP:
		for _, spi := range del.SPIs {
			if len(spi) != 16 {
				continue
			}
			var k saKey
			copy(k.i[:], spi[:8])
			copy(k.r[:], spi[8:])
			d.mu.Lock()
			victim := d.sas[k]
			d.mu.Unlock()
			if victim != nil && victim.remote.Addr() == sa.remote.Addr() {
				d.removeIKESA(victim)
			}
		}
	case ProtoESP, ProtoAH:
		proto := transform.ESP
		if del.Protocol == ProtoAH {
			proto = transform.AH
		}
		for _, spi := range del.SPIs {
			if len(spi) == 4 {
				d.peerDeleted(ipsec.SAID{Dst: sa.remote.Addr(), SPI: binary.BigEndian.Uint32(spi), Protocol: proto})
			}
		}
	}
}

// initialContact deletes the state of every earlier IKE SA with the peer
// (RFC 2407 §4.6.3.3): the peer rebooted and forgot them. Only between the
// same two addresses: the peer's SAs with another address of this end
// are another pair's.
func (d *Daemon) initialContact(sa *ikeSA) {
	d.mu.Lock()
	var old []*ikeSA
	for o := range d.pairs.sasOf(sa.peer()) {
		if o != sa && o.established {
			old = append(old, o)
		}
	}
	var stale []*childSA
	for c := range d.pairs.childrenOf(sa.peer()) {
		if c.ikesa != sa && c.ikesa != nil && c.ikesa.peer() == sa.peer() && c.created.Before(sa.created) {
			stale = append(stale, c)
		}
	}
	d.mu.Unlock()
	for _, o := range old {
		d.removeIKESA(o)
	}
	for _, c := range stale {
		d.removeChild(c, "peer sent INITIAL-CONTACT")
	}
}

// phase1Notify reads an informational message received during phase 1 and
// returns the error it carries, if any.
func (d *Daemon) phase1Notify(sa *ikeSA, pk packet) error {
	m, err := d.openInformational(sa, pk)
	if err != nil {
		return nil
	}
	if err := peerError(m); err != nil {
		return err
	}
	return nil
}

// errString describes an error for status and events without wrapping
// noise.
func errString(err error) string {
	var n notifyError
	if errors.As(err, &n) {
		return fmt.Sprintf("peer refused: %v", n.t)
	}
	return err.Error()
}
