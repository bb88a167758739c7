package v2

import (
	"fmt"
	"net/netip"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// Identities and pre-shared key authentication (RFC 7296 §2.15, §3.5).

// idPayload returns the ID payload of an identity (§3.5).
func idPayload(id ike.Identity) ID {
	switch id.Kind {
	case ike.IDAddress:
		if id.Addr.Is4() {
			return ID{Type: IDIPv4, Data: id.Addr.AsSlice()}
		}
		return ID{Type: IDIPv6, Data: id.Addr.AsSlice()}
	case ike.IDFQDN:
		return ID{Type: IDFQDN, Data: []byte(id.Name)}
	case ike.IDUserFQDN:
		return ID{Type: IDRFC822, Data: []byte(id.Name)}
	}
	return ID{Type: IDDERASN1, Data: []byte(id.Name)}
}

// identity returns the identity of an ID payload.
func (id ID) identity() (ike.Identity, error) {
	switch id.Type {
	case IDIPv4, IDIPv6:
		a, _ := netip.AddrFromSlice(id.Data)
		return ike.AddressIdentity(a), nil
	case IDFQDN:
		i := ike.Identity{Kind: ike.IDFQDN, Name: string(id.Data)}
		return i, i.Validate()
	case IDRFC822:
		i := ike.Identity{Kind: ike.IDUserFQDN, Name: string(id.Data)}
		return i, i.Validate()
	case IDDERASN1:
		return ike.Identity{Kind: ike.IDDN, Name: string(id.Data)}, nil
	}
	return ike.Identity{}, fmt.Errorf("v2: identification type %d not supported", id.Type)
}

// keyPad is the pad of §2.15: "the string 'Key Pad for IKEv2' as 17 ASCII
// characters without null termination".
var keyPad = []byte("Key Pad for IKEv2")

// signedOctets are what one end's AUTH covers (§2.15):
//
//	SignedOctets = RealMessage | Nonce of the other end | prf(SK_p, ID body) [| IntAuth]
//
// where RealMessage is the end's own IKE_SA_INIT message, SK_p its SK_pi
// or SK_pr, the ID body its IDi or IDr payload without the generic
// header, and IntAuth that of the IKE_INTERMEDIATE exchanges, if any
// (RFC 9242 §3.3.2; nil without).
func signedOctets(p prfFunc, realMessage, peerNonce, skp, idBody, intAuth []byte) []byte {
	out := append(append([]byte(nil), realMessage...), peerNonce...)
	return append(append(out, p.sum(skp, idBody)...), intAuth...)
}

// ownOctets and peerOctets are the signed octets of this end's and the
// peer's AUTH in the IKE_AUTH exchange with message ID authMID.
func (sa *ikeSA) ownOctets(idBody []byte, authMID uint32) []byte {
	if sa.initiator {
		return signedOctets(sa.suite.prf, sa.hs.initReq, sa.nr, sa.keys.pi, idBody, sa.intAuth(authMID))
	}
	return signedOctets(sa.suite.prf, sa.hs.initResp, sa.ni, sa.keys.pr, idBody, sa.intAuth(authMID))
}

func (sa *ikeSA) peerOctets(idBody []byte, authMID uint32) []byte {
	if sa.initiator {
		return signedOctets(sa.suite.prf, sa.hs.initResp, sa.ni, sa.keys.pr, idBody, sa.intAuth(authMID))
	}
	return signedOctets(sa.suite.prf, sa.hs.initReq, sa.nr, sa.keys.pi, idBody, sa.intAuth(authMID))
}

// pskAuth computes the AUTH data of signed octets with a pre-shared key
// (§2.15): AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>).
func pskAuth(p prfFunc, psk ipsec.Key, octets []byte) []byte {
	return p.sum(p.sum(psk, keyPad), octets)
}

// pskFor finds the pre-shared key for a peer: by its identity (whole,
// then a user@fqdn's FQDN: the seed's strip-and-retry), then by its
// address. Daemon.mu must be held. It returns a copy, which the exchange
// zeroes when it is done with it: Reconfigure and Close zero the table's
// keys while exchanges that looked theirs up may still be computing with
// them.
func (d *Daemon) pskFor(id ike.Identity, remote netip.Addr) ipsec.Key {
	if !id.IsZero() {
		if k, ok := d.cfg.psk.ForIdentity(id); ok {
			return k.Clone()
		}
	}
	if k, ok := d.cfg.psk.ForAddress(remote); ok {
		return k.Clone()
	}
	return nil
}
