package v2

import (
	"crypto"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/clock/clocktest"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/internal/swantest"
)

// TestPairCertificates brings tunnels up with certificates, each way: the
// signature scheme each end used (RFC 7427 when both announce it, the
// classic method of the key otherwise), the identity forms, and a chain
// through an intermediate CA.
func TestPairCertificates(t *testing.T) {
	root := newRoot(t, "pair root")
	inter := root.Intermediate(t, "pair intermediate", p256, swantest.Around(t0))
	type want struct {
		method AuthMethod
		hash   crypto.Hash
		pss    bool
	}
	cases := []struct {
		name         string
		ca           *swantest.CA
		keyA, keyB   swantest.KeySpec
		pssA         bool
		classic      bool // B announces no SIGNATURE_HASH_ALGORITHMS
		idA, idB     ike.Identity
		wantA, wantB want // the schemes A and B sign with
	}{
		{name: "rsa-rfc7427", ca: root, keyA: rsa2048, keyB: rsa2048, idA: idA, idB: idB,
			wantA: want{AuthDigSig, crypto.SHA256, false}, wantB: want{AuthDigSig, crypto.SHA256, false}},
		{name: "ecdsa-p256-p384", ca: root, keyA: p256, keyB: p384, idA: idA, idB: idB,
			wantA: want{AuthDigSig, crypto.SHA256, false}, wantB: want{AuthDigSig, crypto.SHA384, false}},
		{name: "rsa-pss", ca: root, keyA: rsa2048, keyB: p256, pssA: true, idA: idA, idB: idB,
			wantA: want{AuthDigSig, crypto.SHA256, true}, wantB: want{AuthDigSig, crypto.SHA256, false}},
		{name: "classic-rsa-ecdsa", ca: root, keyA: rsa2048, keyB: p384, classic: true, idA: idA, idB: idB,
			wantA: want{AuthRSASig, crypto.SHA1, false}, wantB: want{AuthECDSAP384, crypto.SHA384, false}},
		{name: "classic-p256", ca: root, keyA: p256, keyB: p256, classic: true, idA: idA, idB: idB,
			wantA: want{AuthECDSAP256, crypto.SHA256, false}, wantB: want{AuthECDSAP256, crypto.SHA256, false}},
		{name: "intermediate-user-fqdn", ca: inter, keyA: p256, keyB: rsa2048,
			idA: ike.Identity{Kind: ike.IDUserFQDN, Name: "gw@a.example.net"}, idB: ike.Identity{Kind: ike.IDUserFQDN, Name: "gw@b.example.net"},
			wantA: want{AuthDigSig, crypto.SHA256, false}, wantB: want{AuthDigSig, crypto.SHA256, false}},
		{name: "addresses", ca: root, keyA: p256, keyB: p256, idA: ike.AddressIdentity(addrA), idB: ike.AddressIdentity(addrB),
			wantA: want{AuthDigSig, crypto.SHA256, false}, wantB: want{AuthDigSig, crypto.SHA256, false}},
		{name: "dn", ca: inter, keyA: p256, keyB: p256, idA: ike.Identity{Kind: ike.IDDN}, idB: ike.Identity{Kind: ike.IDDN},
			wantA: want{AuthDigSig, crypto.SHA256, false}, wantB: want{AuthDigSig, crypto.SHA256, false}},
	}
	for _, c := range cases {
		for _, aInit := range []bool{true, false} {
			name := c.name + map[bool]string{true: "/AInitiates", false: "/BInitiates"}[aInit]
			t.Run(name, func(t *testing.T) {
				clk := clocktest.New(t0)
				ia, ib := c.idA, c.idB
				certsA := leafFor(t, c.ca, &ia, c.keyA, swantest.Around(t0))
				certsB := leafFor(t, c.ca, &ib, c.keyB, swantest.Around(t0))
				certsA.RSAPSS = c.pssA
				ca, cb := certConfig(clk, certsA, root), certConfig(clk, certsB, root)
				certTunnels(t, &ca, &cb, ia, ib)
				p := newPair(t, clk, ca, cb)
				p.b.d.classicAuth = c.classic
				l := p.record()
				init, resp := p.a, p.b
				if !aInit {
					init, resp = p.b, p.a
				}
				init.d.Acquire("t1")
				waitEvent(t, init.lis, "up", "t1")
				waitEvent(t, resp.lis, "up", "t1")
				checkKeysMatch(t, p.a, p.b, "t1", "t1")
				ownA, peerA := p.a.schemes(t)
				ownB, peerB := p.b.schemes(t)
				for _, x := range []struct {
					who       string
					own, seen sigScheme
					w         want
				}{{"A", ownA, peerB, c.wantA}, {"B", ownB, peerA, c.wantB}} {
					if x.own.method != x.w.method || x.own.hash != x.w.hash || x.own.pss != x.w.pss {
						t.Errorf("%s signed with %v, want method %d %s pss=%v", x.who, x.own, x.w.method, hashName(x.w.hash), x.w.pss)
					}
					if x.seen != x.own {
						t.Errorf("%s signed with %v, its peer verified %v", x.who, x.own, x.seen)
					}
				}
				st := p.a.d.Status()
				if len(st.IKESAs) != 1 || st.IKESAs[0].RemoteID != ib.String() || st.IKESAs[0].Policy.Auth != ca.Policies[0].Auth {
					t.Errorf("A's IKE SA: %+v", st.IKESAs)
				}
				// On the wire: A's IKE_AUTH message carries its chain
				// and, as initiator, a CERTREQ naming the root.
				m := exchange(t, l.decode(t, addrA, peerSK(t, p.b)), IKEAuth)
				if got, want := len(m.All(PayloadCERT)), len(certsA.Chain); got != want {
					t.Errorf("A sent %d CERT payloads, its chain has %d", got, want)
				}
				if n := len(m.All(PayloadCERTREQ)); aInit && (n != 1 || string(peerCertReq(m)) != string(caHashes(certsA.CAs))) {
					t.Errorf("A's IKE_AUTH request: %d CERTREQ %x", n, peerCertReq(m))
				}
			})
		}
	}
}

// TestPairCertReqHonoured: a peer that trusts the intermediate CA itself
// (its CERTREQ names it) gets the end-entity certificate alone; one that
// trusts the root only gets the intermediate too.
func TestPairCertReqHonoured(t *testing.T) {
	root := newRoot(t, "pair root")
	inter := root.Intermediate(t, "pair intermediate", p256, swantest.Around(t0))
	clk := clocktest.New(t0)
	ia, ib := idA, idB
	certsA, certsB := leafFor(t, inter, &ia, p256, swantest.Around(t0)), leafFor(t, inter, &ib, p256, swantest.Around(t0))
	ca, cb := certConfig(clk, certsA, root), certConfig(clk, certsB, inter)
	certTunnels(t, &ca, &cb, ia, ib)
	p := newPair(t, clk, ca, cb)
	l := p.record()
	p.up(t, "t1")
	initResp := l.sent(addrB)[0]
	m, err := ParseMessage(initResp)
	if err != nil || m.Exchange != IKESAInit || string(peerCertReq(m)) != string(caHashes([]*x509.Certificate{inter.Cert})) {
		t.Fatalf("B's IKE_SA_INIT response does not name the intermediate: %v %x", err, peerCertReq(m))
	}
	fromA := exchange(t, l.decode(t, addrA, peerSK(t, p.b)), IKEAuth)
	fromB := exchange(t, l.decode(t, addrB, peerSK(t, p.a)), IKEAuth)
	if n := len(fromA.All(PayloadCERT)); n != 1 {
		t.Errorf("A sent %d certificates to a peer that has the intermediate", n)
	}
	if n := len(fromB.All(PayloadCERT)); n != 2 {
		t.Errorf("B sent %d certificates to a peer that trusts only the root", n)
	}
}

// TestPairCertificateRefused: a certificate from an unknown CA, expired,
// or not naming the identity its owner presents is refused by the side
// that checks it, with AUTHENTICATION_FAILED to the other and the reason
// in its log; neither installs an SA.
func TestPairCertificateRefused(t *testing.T) {
	root := newRoot(t, "pair root")
	other := newRoot(t, "somebody else's root")
	expired := swantest.Validity{NotBefore: t0.Add(-48 * time.Hour), NotAfter: t0.Add(-time.Hour)}
	cases := []struct {
		name     string
		bad      string // "A" or "B": whose certificate is bad
		ca       *swantest.CA
		validity swantest.Validity
		claim    *ike.Identity // the identity the bad side presents, when not its certificate's
		reason   string
		err      error
	}{
		{"unknown-ca-of-responder", "B", other, swantest.Around(t0), nil, "not signed by a trusted CA", ike.ErrUnknownCA},
		{"unknown-ca-of-initiator", "A", other, swantest.Around(t0), nil, "not signed by a trusted CA", ike.ErrUnknownCA},
		{"expired-initiator", "A", root, expired, nil, "expired", ike.ErrCertExpired},
		{"expired-responder", "B", root, expired, nil, "expired", ike.ErrCertExpired},
		{"identity-mismatch-initiator", "A", root, swantest.Around(t0), &ike.Identity{Kind: ike.IDFQDN, Name: "c.example.net"},
			"does not name", ike.ErrIdentityMismatch},
		{"user-fqdn-not-stripped", "B", root, swantest.Around(t0), &ike.Identity{Kind: ike.IDUserFQDN, Name: "gw@b.example.net"},
			"does not name", ike.ErrIdentityMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := clocktest.New(t0)
			ia, ib := idA, idB
			certsA, certsB := leafFor(t, root, &ia, p256, swantest.Around(t0)), leafFor(t, root, &ib, p256, swantest.Around(t0))
			badID := &ia
			if c.bad == "B" {
				badID = &ib
			}
			bad := leafFor(t, c.ca, badID, p256, c.validity)
			if c.bad == "A" {
				certsA = bad
			} else {
				certsB = bad
			}
			if c.claim != nil {
				*badID = *c.claim
			}
			ca, cb := certConfig(clk, certsA, root), certConfig(clk, certsB, root)
			certTunnels(t, &ca, &cb, ia, ib)
			logA, logB := logTo(&ca), logTo(&cb)
			p := newPair(t, clk, ca, cb)
			p.a.d.Acquire("t1")
			e := waitEvent(t, p.a.lis, "failed", "t1")
			checker, checkerLog := p.a, logA // A checks B's certificate
			if c.bad == "A" {
				checker, checkerLog = p.b, logB
				if !strings.Contains(e.Reason, "AUTHENTICATION_FAILED") {
					t.Errorf("A's failure %q does not say AUTHENTICATION_FAILED", e.Reason)
				}
			} else {
				if !strings.Contains(e.Reason, c.reason) {
					t.Errorf("A's failure %q does not say %q", e.Reason, c.reason)
				}
				// A told B: B's IKE SA goes, and with it its tunnel.
				waitFor(t, "B's IKE SA gone", func() bool { return len(p.b.d.Status().IKESAs) == 0 })
				if countEvents(p.b.lis, "up", "t1") > 0 {
					waitEvent(t, p.b.lis, "down", "t1")
				}
			}
			waitFor(t, "the checker's log", func() bool { return strings.Contains(checkerLog.String(), c.reason) })
			if checker.d.Status().Counters.AuthFailed == 0 {
				t.Error("the checker did not count the failure")
			}
			if p.b.d.Status().Counters.AuthFailed == 0 || p.a.d.Status().Counters.AuthFailed == 0 {
				t.Errorf("AuthFailed: A %d, B %d", p.a.d.Status().Counters.AuthFailed, p.b.d.Status().Counters.AuthFailed)
			}
			waitFor(t, "no SAs", func() bool { return len(p.a.inst.SAs()) == 0 && len(p.b.inst.SAs()) == 0 })
			// The same reason, from ike's check alone.
			leaf := bad.Chain[0]
			if _, err := ike.VerifyPeerCertificate(bad.Chain, p.a.d.cfg.roots, t0, *badID); !errors.Is(err, c.err) {
				t.Errorf("VerifyPeerCertificate(%s) = %v, want %v", leaf.Subject, err, c.err)
			}
		})
	}
}

// TestPairAuthMethodMismatch: one end wants certificates, the other a
// pre-shared key: refused, and the reason names the methods.
func TestPairAuthMethodMismatch(t *testing.T) {
	root := newRoot(t, "pair root")
	clk := clocktest.New(t0)
	ia := idA
	ca := certConfig(clk, leafFor(t, root, &ia, p256, swantest.Around(t0)), root)
	cb := pairConfig(clk, ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 19})
	cb.PreSharedKeys = []ike.PreSharedKey{{Peer: ia.Name, Key: []byte("k")}}
	certTunnels(t, &ca, &cb, ia, idB)
	logB := logTo(&cb)
	p := newPair(t, clk, ca, cb)
	p.a.d.Acquire("t1")
	if e := waitEvent(t, p.a.lis, "failed", "t1"); !strings.Contains(e.Reason, "AUTHENTICATION_FAILED") {
		t.Fatalf("reason %q", e.Reason)
	}
	waitFor(t, "B's reason", func() bool { return strings.Contains(logB.String(), "which no policy of the IKE SA allows") })
}

// TestPairCertIKERekey: an IKE SA authenticated with certificates, with
// fragmentation on, is rekeyed: the new one keeps both, and the rekey's
// CREATE_CHILD_SA (a 2048-bit KE) goes in fragments.
func TestPairCertIKERekey(t *testing.T) {
	root := newRoot(t, "pair root")
	clk := clocktest.New(t0)
	ia, ib := idA, idB
	ca, cb := certConfig(clk, leafFor(t, root, &ia, p256, swantest.Around(t0)), root), certConfig(clk, leafFor(t, root, &ib, p256, swantest.Around(t0)), root)
	ca.Policies[0].Lifetime, cb.Policies[0].Lifetime = time.Hour, 4*time.Hour
	ca.Policies[0].Group, cb.Policies[0].Group = 14, 14
	ca.FragmentMTU, cb.FragmentMTU = ike.MinFragmentMTU, ike.MinFragmentMTU
	certTunnels(t, &ca, &cb, ia, ib)
	p := newPair(t, clk, ca, cb)
	p.up(t, "t1")
	sent := func() uint64 { return p.a.d.Status().Counters.FragmentsSent + p.b.d.Status().Counters.FragmentsSent }
	before := sent()
	p.advance(t, 55*time.Minute)
	waitFor(t, "one rekeyed IKE SA each", func() bool {
		a, b := p.a.d.Status().IKESAs, p.b.d.Status().IKESAs
		return len(a) == 1 && len(b) == 1 && a[0].Rekeys == 1 && b[0].Rekeys == 1
	})
	for _, s := range []*side{p.a, p.b} {
		st := s.d.Status()
		if st.IKESAs[0].Policy.Auth != ike.AuthECDSASig {
			t.Errorf("the new IKE SA says it authenticated with %v", st.IKESAs[0].Policy.Auth)
		}
		sa := onlyIKESA(t, s)
		sa.lock()
		on := sa.frag.on
		sa.mu.Unlock()
		if !on {
			t.Error("the new IKE SA does not fragment")
		}
	}
	if sent() <= before {
		t.Error("the rekey's CREATE_CHILD_SA went whole")
	}
}
