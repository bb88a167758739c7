package v2

import (
	"crypto"

	"github.com/ismgw/ism/ike"
)

// handshake is what an IKE SA keeps from IKE_SA_INIT (and
// IKE_INTERMEDIATE) for its IKE_AUTH, and no longer once established.
type handshake struct {
	initReq, initResp []byte // the IKE_SA_INIT request and response as sent (§2.15's RealMessage1/2)
	ni, nr            []byte // the nonces of IKE_SA_INIT (§2.14, §2.15)
	// The hashes of the peer's SIGNATURE_HASH_ALGORITHMS (nil: it sent
	// none, RFC 7427 §4) and the CA hashes of its CERTREQ.
	peerHashes  []crypto.Hash
	peerCertReq []byte
	// intAuthI and intAuthR are the running IntAuth_i and IntAuth_r of
	// RFC 9242 §3.3.2.
	intAuthI, intAuthR []byte
	kex                *ike.KeyExchange // the initiator's, until IKE_SA_INIT completes
	cookie             []byte           // initiator: the responder's cookie, first in IKE_SA_INIT
	waiting            []string         // tunnels that want a child SA once established
	// turn: the SA holds one of the daemon's places for IKE SAs this end
	// initiates (initiate), until it is established or gone (endTurn).
	turn bool
	// RFC 9370 additional key exchanges in IKE_INTERMEDIATE
	// (intermediate.go): the exchanges done, the initiator's key while
	// its exchange runs, the responder's keys before the last one
	// (addKeys; nil when none).
	intDone int
	intKex  *ike.KeyExchange
	oldKeys *ikeKeys
}

// zero zeroes and lets go the handshake's secrets. hs may be nil.
func (hs *handshake) zero() {
	if hs == nil {
		return
	}
	for _, k := range []*ike.KeyExchange{hs.kex, hs.intKex} {
		if k != nil {
			k.Zero()
		}
	}
	hs.kex, hs.intKex = nil, nil
	if hs.oldKeys != nil {
		hs.oldKeys.zero()
		hs.oldKeys = nil
	}
}

// intDone returns the IKE_INTERMEDIATE exchanges done (none once
// established).
func (sa *ikeSA) intDone() int {
	if sa.hs == nil {
		return 0
	}
	return sa.hs.intDone
}
