package v2

// The extensions IKE_SA_INIT announces besides NAT detection:
// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3) when fragmentation is
// configured, SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) when a policy
// authenticates with certificates, and, in the response, a CERTREQ naming
// the trusted CAs when a policy of the chosen transforms does (RFC 7296
// §1.2), and INTERMEDIATE_EXCHANGE_SUPPORTED (RFC 9242 §3.1) when a
// policy has additional key exchanges, which need IKE_INTERMEDIATE (RFC
// 9370 §2.2.1). A responder announces an extension only when the request
// did.

// initExtensions returns this end's extension payloads for the IKE_SA_INIT
// request (request set) or response of sa.
func (d *Daemon) initExtensions(sa *ikeSA, request bool) []Payload {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ps []Payload
	if d.fragmentMTU(sa.remote.Addr().Unmap().Is4()) > 0 && (request || sa.frag.on) {
		ps = append(ps, notifyPayload(IKEv2FragmentationSupported, nil))
	}
	certs := false
	for _, su := range d.cfg.suites {
		certs = certs || (su.auth.Certificate() && (request || su.sameTransforms(*sa.suite)))
	}
	if certs && !d.classicAuth && (request || sa.hs.peerHashes != nil) {
		ps = append(ps, hashAlgorithmsNotify())
	}
	if certs && !request && len(d.cfg.certReq) > 0 {
		ps = append(ps, certReqPayload(d.cfg.certReq))
	}
	if (request && wantsIntermediate(d.cfg.suites)) || (!request && sa.intermediate) {
		ps = append(ps, notifyPayload(IntermediateExchangeSupported, nil))
	}
	return ps
}

// readExtensions records what the peer's IKE_SA_INIT message announced.
// For a responder it runs before initExtensions, which answers in kind.
func (sa *ikeSA) readExtensions(m *Message) {
	d := sa.d
	d.mu.Lock()
	mtu := d.fragmentMTU(sa.remote.Addr().Unmap().Is4())
	classic := d.classicAuth
	d.mu.Unlock()
	_, frag := m.Notify(IKEv2FragmentationSupported)
	sa.frag.on, sa.frag.mtu = frag && mtu > 0, int32(mtu)
	if !classic {
		sa.hs.peerHashes = peerHashes(m)
	}
	sa.hs.peerCertReq = peerCertReq(m)
	_, sa.intermediate = m.Notify(IntermediateExchangeSupported)
}
