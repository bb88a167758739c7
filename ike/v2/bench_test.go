package v2

import (
	"fmt"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/ipsec"
)

// BenchmarkIKEv2Setup measures full IKE SA setups, IKE_SA_INIT and
// IKE_AUTH with the first child SA, both daemons in this process over the
// in-memory wire (so both ends' DH and AUTH count): setups/s is what one
// process does for initiator and responder together. Run with -cpu 1 for
// one core. It is the base of `ismbench ike -version 2`.
func BenchmarkIKEv2Setup(b *testing.B) {
	for _, c := range []struct {
		name  string
		group int
		enc   ike.Encryption
	}{{"aes128-sha256-modp2048", 14, ike.EncAES128}, {"aes128gcm-ecp256", 19, ike.EncAES128GCM}, {"aes128gcm-curve25519", 31, ike.EncAES128GCM}} {
		b.Run(c.name, func(b *testing.B) {
			pol := ike.Policy{Encryption: c.enc, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: c.group}
			keys := []ike.PreSharedKey{{Peer: addrA.String(), Key: ipsec.Key("bench")}, {Peer: addrB.String(), Key: ipsec.Key("bench")}}
			ca := ike.Config{Policies: []ike.Policy{pol}, PreSharedKeys: keys,
				Tunnels: []ike.Tunnel{pairTunnel(b, "t1", addrA, addrB, netA, netB, "esp-aes128-gcm16")}}
			cb := ike.Config{Policies: []ike.Policy{pol}, PreSharedKeys: keys,
				Tunnels: []ike.Tunnel{pairTunnel(b, "t1", addrB, addrA, netB, netA, "esp-aes128-gcm16")}}
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
