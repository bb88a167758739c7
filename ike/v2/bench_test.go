package v2

import (
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/ipsec"
)

// BenchmarkIKEv2Setup measures full IKE SA setups, IKE_SA_INIT and
// IKE_AUTH with the first child SA, both daemons in this process over the
// in-memory wire (so both ends' DH and AUTH count): setups/s is what one
// process does for initiator and responder together. Run with -cpu 1 for
// one core. It is the base of `ismbench ike -version 2`. The certificate
// cases sign and verify RFC 7427 signatures and a two-certificate chain
// each way (P-256 or RSA-2048 keys under an intermediate CA). The -mlkem768
// cases are the post-quantum hybrids: one IKE_INTERMEDIATE exchange with
// ML-KEM-768 (RFC 9370) after the classical IKE_SA_INIT.
func BenchmarkIKEv2Setup(b *testing.B) {
	for _, c := range []struct {
		name  string
		group int
		enc   ike.Encryption
		key   *swantest.KeySpec // nil: pre-shared keys
		addke []int
	}{{"aes128-sha256-modp2048", 14, ike.EncAES128, nil, nil}, {"aes128gcm-ecp256", 19, ike.EncAES128GCM, nil, nil},
		{"aes128gcm-curve25519", 31, ike.EncAES128GCM, nil, nil},
		{"aes128gcm-ecp256-ecdsa-p256-chain", 19, ike.EncAES128GCM, &p256, nil}, {"aes128gcm-ecp256-rsa2048-chain", 19, ike.EncAES128GCM, &rsa2048, nil},
		{"aes128gcm-ecp256-mlkem768", 19, ike.EncAES128GCM, nil, []int{ike.MLKEM768}},
		{"aes128gcm-curve25519-mlkem768", 31, ike.EncAES128GCM, nil, []int{ike.MLKEM768}}} {
		b.Run(c.name, func(b *testing.B) {
			pol := ike.Policy{Encryption: c.enc, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: c.group, AdditionalKE: c.addke}
			keys := []ike.PreSharedKey{{Peer: addrA.String(), Key: ipsec.Key("bench")}, {Peer: addrB.String(), Key: ipsec.Key("bench")}}
			ca := ike.Config{Policies: []ike.Policy{pol}, PreSharedKeys: keys,
				Tunnels: []ike.Tunnel{pairTunnel(b, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}}
			cb := ike.Config{Policies: []ike.Policy{pol}, PreSharedKeys: keys,
				Tunnels: []ike.Tunnel{pairTunnel(b, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}}
			if c.key != nil {
				benchCertificates(b, &ca, &cb, *c.key)
			}
			b.ReportAllocs()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				w := iketest.NewWire()
				la, lb := iketest.NewListener(), iketest.NewListener()
				da, err := New(ca, iketest.NewInstaller(1), w, la)
				if err != nil {
					b.Fatal(err)
				}
				db, _ := New(cb, iketest.NewInstaller(2), w, lb)
				w.Attach(addrA, da)
				w.Attach(addrB, db)
				da.Acquire("t1")
				for _, l := range []*iketest.Listener{la, lb} {
					select {
					case e := <-l.C():
						if e.Kind != "up" {
							b.Fatal(fmt.Sprint(e))
						}
					case <-time.After(10 * time.Second):
						b.Fatal("no setup")
					}
				}
				da.Close()
				db.Close()
				w.Close()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "setups/s")
		})
	}
}

// benchCertificates makes both configurations authenticate with
// certificates of key type k from an intermediate CA, valid now.
func benchCertificates(b *testing.B, ca, cb *ike.Config, k swantest.KeySpec) {
	v := swantest.Around(time.Now())
	root := swantest.NewRootCA(b, "bench root", p256, v)
	inter := root.Intermediate(b, "bench intermediate", p256, v)
	auth := ike.AuthECDSASig
	if k.Curve == nil {
		auth = ike.AuthRSASig
	}
	for _, x := range []struct {
		cfg       *ike.Config
		own, peer ike.Identity
	}{{ca, idA, idB}, {cb, idB, idA}} {
		c, key := inter.Issue(b, swantest.LeafSpec{CommonName: x.own.Name, DNSNames: []string{x.own.Name}, Key: k, Validity: v})
		x.cfg.Certificates = &ike.Certificates{Chain: inter.Chain(c), Key: key, CAs: []*x509.Certificate{root.Cert}}
		x.cfg.Policies[0].Auth, x.cfg.PreSharedKeys = auth, nil
		x.cfg.Tunnels[0].LocalID, x.cfg.Tunnels[0].RemoteID = x.own, x.peer
	}
}
