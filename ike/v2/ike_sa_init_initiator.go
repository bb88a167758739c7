package v2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/ismgw/ism/ike"
)

// The initiator's IKE_SA_INIT (RFC 7296 §1.2):
//
//	HDR, SAi1, KEi, Ni, N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP)  -->
//	                                  <--  HDR, SAr1, KEr, Nr, N(NAT_D...)
//
// or, when the responder wants another group, <-- HDR, N(INVALID_KE_PAYLOAD)
// and the request again with that group (§1.2, §1.3).

// nonceLen is this end's nonce length: at least half the PRF's key size
// and at least 16 bytes (§2.10); 32 covers every PRF here.
const nonceLen = 32

// initiate starts an IKE SA to remote for the named tunnel.
func (d *Daemon) initiate(local, remote netip.Addr, name string) {
	sa := d.newIKESA(true, netip.AddrPortFrom(local, 500), netip.AddrPortFrom(remote, 500), 0)
	sa.lock()
	defer sa.unlock()
	sa.hs.turn = true // negotiate took the place
	d.mu.Lock()
	sa.hs.waiting = []string{name}
	sa.forceEncap = d.wantsEncap(local, remote)
	group := d.cfg.suites[0].group
	d.mu.Unlock()
	sa.startInit(group)
}

// startInit sends IKE_SA_INIT with a key of the given group.
func (sa *ikeSA) startInit(group int) {
	d := sa.d
	g, _ := ike.LookupGroup(group)
	kex, err := g.GenerateKey(d.rand)
	if err != nil {
		sa.fail(err.Error())
		return
	}
	if sa.hs.kex != nil {
		sa.hs.kex.Zero()
	}
	sa.hs.kex = kex
	if sa.hs.ni == nil {
		sa.hs.ni = make([]byte, nonceLen)
		d.random(sa.hs.ni)
	}
	sa.requestInit()
}

// requestInit sends IKE_SA_INIT with the SA's key and nonce, and the
// responder's cookie first if it sent one (§2.6: every retry keeps it,
// §2.6.1).
func (sa *ikeSA) requestInit() {
	d := sa.d
	kex := sa.hs.kex
	sa.request(&request{exchange: IKESAInit, plain: true,
		build: func(sa *ikeSA) ([]Payload, error) {
			d.mu.Lock()
			suites := d.cfg.suites
			d.mu.Unlock()
			var ps []Payload
			if sa.hs.cookie != nil {
				ps = append(ps, notifyPayload(Cookie, sa.hs.cookie))
			}
			ps = append(ps,
				Payload{Type: PayloadSA, Body: ikeProposals(suites).marshal()},
				Payload{Type: PayloadKE, Body: (&KE{Group: uint16(kex.Group().ID), Data: kex.Public}).marshal()},
				Payload{Type: PayloadNonce, Body: sa.hs.ni},
			)
			// The RFC 9370 key exchanges go with the NAT notifies.
			ps = append(ps, natNotifies(sa.spiI, 0, sa.local, sa.remote, sa.forceEncap)...)
			return append(ps, d.initExtensions(sa, true)...), nil
		},
		onResponse: (*ikeSA).ikeSAInitResponse,
		onTimeout:  func(sa *ikeSA) { sa.fail("the peer did not answer IKE_SA_INIT") },
	})
}

// ikeSAInitResponse processes the responder's IKE_SA_INIT.
func (sa *ikeSA) ikeSAInitResponse(m *Message) {
	d := sa.d
	if m.SPIr == 0 && sa.followCookie(m) {
		return
	}
	if e := peerError(m); e != nil {
		if e.Type == InvalidKEPayload && len(e.Data) == 2 {
			if g := int(binary.BigEndian.Uint16(e.Data)); sa.retryGroup(g) {
				return
			}
		}
		if e.Type == NoProposalChosen {
			d.count(func(c *ike.Counters) { c.NoProposalChosen++ })
		}
		sa.fail(fmt.Sprintf("the peer answered IKE_SA_INIT with %v", e.Type))
		return
	}
	if err := sa.processInitResponse(m); err != nil {
		sa.fail(err.Error())
		return
	}
	if len(sa.suite.addke) > 0 {
		// RFC 9370 §2.2.2: the additional key exchanges, one
		// IKE_INTERMEDIATE exchange (RFC 9242) each, before IKE_AUTH.
		sa.setState(stateIntSent)
		sa.startIntermediate()
		return
	}
	sa.setState(stateAuthSent)
	sa.startAuth()
}

// retryGroup restarts IKE_SA_INIT with the group an INVALID_KE_PAYLOAD
// named, if a policy allows it and it is not the one just tried (§1.2).
func (sa *ikeSA) retryGroup(g int) bool {
	d := sa.d
	d.mu.Lock()
	allowed := false
	for _, s := range d.cfg.suites {
		allowed = allowed || s.group == g
	}
	d.mu.Unlock()
	if !allowed || sa.hs.kex == nil || sa.hs.kex.Group().ID == g {
		return false
	}
	d.count(func(c *ike.Counters) { c.InvalidKE++ })
	d.log.Debug("responder asks for another group", "group", g, "remote", sa.remote)
	sa.win.nextID = 0 // the same exchange again (§2.2: IKE_SA_INIT is message 0)
	sa.startInit(g)
	return true
}

// processInitResponse checks the responder's choice, computes the keys
// and detects NATs.
func (sa *ikeSA) processInitResponse(m *Message) error {
	d := sa.d
	var saP SA
	var ke KE
	if ok, err := m.decode(PayloadSA, &saP); !ok || err != nil {
		return fmt.Errorf("v2: IKE_SA_INIT response without a valid SA payload: %v", err)
	}
	if ok, err := m.decode(PayloadKE, &ke); !ok || err != nil {
		return fmt.Errorf("v2: IKE_SA_INIT response without a valid KE payload: %v", err)
	}
	np, ok := m.Get(PayloadNonce)
	if !ok || m.SPIr == 0 {
		return fmt.Errorf("%w: IKE_SA_INIT response without a nonce or SPI", ErrMalformed)
	}
	nr, err := parseNonce(np.Body)
	if err != nil {
		return err
	}
	d.mu.Lock()
	suites := d.cfg.suites
	d.mu.Unlock()
	su, err := acceptedIKE(suites, &saP)
	if err != nil {
		return err
	}
	if su.group != int(ke.Group) || su.group != sa.hs.kex.Group().ID {
		return fmt.Errorf("v2: the responder chose group %d and sent a key of group %d", su.group, ke.Group)
	}
	if _, ok := m.Notify(IntermediateExchangeSupported); len(su.addke) > 0 && !ok {
		return fmt.Errorf("v2: the responder chose additional key exchanges %v without IKE_INTERMEDIATE (RFC 9370 §2.2.1)", su.addke)
	}
	shared, err := sa.hs.kex.Shared(ke.Data)
	if err != nil {
		return err
	}
	sa.hs.kex.Zero()
	sa.hs.kex = nil
	sa.spiR, sa.hs.nr, sa.suite, sa.hs.initResp = m.SPIr, nr, d.suites.get(su), m.raw
	if err := sa.deriveKeys(shared); err != nil {
		return err
	}
	sa.readExtensions(m)
	var found bool
	sa.localNAT, sa.remoteNAT, found = detectNAT(m, sa.local, sa.remote)
	if found {
		sa.float4500()
	}
	return nil
}

// deriveKeys computes SKEYSEED and the SA's keys from g^ir (§2.14) and
// makes the SK protections of both directions.
func (sa *ikeSA) deriveKeys(shared []byte) error {
	seed := sa.suite.prf.skeyseed(sa.hs.ni, sa.hs.nr, shared)
	clear(shared)
	return sa.keysFromSeed(seed, sa.hs.ni, sa.hs.nr)
}

// keysFromSeed computes the SA's keys from SKEYSEED (§2.14), zeroes it,
// and checks that the SK protections of both directions can be made.
func (sa *ikeSA) keysFromSeed(seed, ni, nr []byte) error {
	su := sa.suite
	sa.keys = deriveIKEKeys(*su, seed, ni, nr, sa.spiI, sa.spiR)
	clear(seed)
	sa.d.mu.Lock()
	log := sa.d.cfg.KeyLog
	sa.d.mu.Unlock()
	if log != nil { // tests only: an effect, run once sa.mu is released
		k, c := sa.keys, bytes.Clone
		keys := ike.IKESAKeys{SPIi: sa.spiI, SPIr: sa.spiR, Policy: su.policy(), EI: c(k.ei()), ER: c(k.er()), AI: c(k.ai()), AR: c(k.ar())}
		sa.after(func() { log(keys) })
	}
	return sa.checkKeys()
}

// fail ends an IKE SA that could not be set up: its tunnels waiting for
// it hear why. The SA's mutex must be held.
func (sa *ikeSA) fail(reason string) {
	sa.d.log.Info("IKE SA failed", "remote", sa.remote, "reason", reason)
	sa.destroy(reason)
}

// wantsEncap reports whether a tunnel from local to remote forces UDP
// encapsulation. Daemon.mu must be held.
func (d *Daemon) wantsEncap(local, remote netip.Addr) bool {
	for tu := range d.tunnelsAt(local, remote, ike.Identity{}) {
		if tu.remoteAddr() == remote && tu.cfg.UDPEncap {
			return true
		}
	}
	return false
}
