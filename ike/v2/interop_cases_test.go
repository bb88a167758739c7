package v2

import (
	"testing"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// TestInteropPSKAddress: identities are the addresses; IKE
// aes128-sha256-modp2048, ESP aes128gcm16 without PFS.
func TestInteropPSKAddress(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		cfg := pskConfig(ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14})
		cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
		x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-modp2048", ESPProposals: "aes128gcm16"}.render())
		x.up(t, ismInit)
		x.check(t, swanWant{encr: "AES_CBC", keysize: "128", integ: "HMAC_SHA2_256_128", prf: "PRF_HMAC_SHA2_256", dh: "MODP_2048",
			espEncr: "AES_GCM_16", espKeysize: "128"})
	})
}

// TestInteropPSKFQDN: FQDN identities both ways, the key found by the
// peer's FQDN; IKE aes256gcm16-prfsha384-ecp384, ESP aes128-sha1.
func TestInteropPSKFQDN(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		cfg := ike.Config{Policies: []ike.Policy{{Encryption: ike.EncAES256GCM, PRF: ike.HashSHA384, Auth: ike.AuthPSK, Group: 20}},
			PreSharedKeys: []ike.PreSharedKey{{Peer: "swan.example.net", Key: ipsec.Key(interopPSK)}}}
		tu := interopTunnel(t, "esp-aes128-hmac-sha")
		tu.LocalID = ike.Identity{Kind: ike.IDFQDN, Name: "ism.example.net"}
		tu.RemoteID = ike.Identity{Kind: ike.IDFQDN, Name: "swan.example.net"}
		cfg.Tunnels = []ike.Tunnel{tu}
		x := newInterop(t, cfg, swanConn{Proposals: "aes256gcm16-prfsha384-ecp384", ESPProposals: "aes128-sha1",
			LocalID: "swan.example.net", RemoteID: "ism.example.net"}.render())
		x.up(t, ismInit)
		x.check(t, swanWant{encr: "AES_GCM_16", keysize: "256", prf: "PRF_HMAC_SHA2_384", dh: "ECP_384",
			espEncr: "AES_CBC", espKeysize: "128", espInteg: "HMAC_SHA1_96"})
		if st := x.d.Status(); len(st.IKESAs) != 1 || st.IKESAs[0].RemoteID != "swan.example.net" {
			t.Fatalf("IKE SA: %+v", st.IKESAs)
		}
	})
}

// TestInteropPSKUserFQDN: charon presents user@fqdn; ISM has a key only
// for the FQDN and finds it by stripping the user (the seed). IKE
// aes128-sha1-modp1024, ESP 3des-md5 (the seed's).
func TestInteropPSKUserFQDN(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		cfg := ike.Config{Policies: []ike.Policy{{Encryption: ike.EncAES128, Hash: ike.HashSHA1, Auth: ike.AuthPSK, Group: 2}},
			PreSharedKeys: []ike.PreSharedKey{{Peer: "swan.example.net", Key: ipsec.Key(interopPSK)}}}
		tu := interopTunnel(t, "esp-3des-hmac-md5")
		tu.LocalID = ike.Identity{Kind: ike.IDFQDN, Name: "ism.example.net"}
		tu.RemoteID = ike.Identity{Kind: ike.IDUserFQDN, Name: "branch7@swan.example.net"}
		cfg.Tunnels = []ike.Tunnel{tu}
		x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha1-modp1024", ESPProposals: "3des-md5",
			LocalID: "branch7@swan.example.net", RemoteID: "ism.example.net"}.render())
		x.up(t, ismInit)
		x.check(t, swanWant{encr: "AES_CBC", keysize: "128", integ: "HMAC_SHA1_96", prf: "PRF_HMAC_SHA1", dh: "MODP_1024",
			espEncr: "3DES_CBC", espInteg: "HMAC_MD5_96"})
	})
}

// TestInteropCurve25519: group 31 (RFC 8031) for the IKE SA.
func TestInteropCurve25519(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		cfg := pskConfig(ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 31})
		cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
		x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-curve25519", ESPProposals: "aes128gcm16"}.render())
		x.up(t, ismInit)
		x.check(t, swanWant{encr: "AES_CBC", keysize: "128", integ: "HMAC_SHA2_256_128", prf: "PRF_HMAC_SHA2_256", dh: "CURVE_25519",
			espEncr: "AES_GCM_16", espKeysize: "128"})
	})
}

// TestInteropProposalOrder: ISM's second policy and transform set entry
// are the ones charon accepts; charon's INVALID_KE_PAYLOAD (ISM's first
// KE is of group 14, charon wants 19) makes ISM retry with group 19.
func TestInteropProposalOrder(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		cfg := pskConfig(ike.Policy{Encryption: ike.EncAES256, Hash: ike.HashSHA512, Auth: ike.AuthPSK, Group: 14},
			ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 19})
		cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes256-hmac-sha512", "esp-aes128-hmac-sha256")}
		x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-ecp256", ESPProposals: "aes128-sha256"}.render())
		x.up(t, ismInit)
		x.check(t, swanWant{encr: "AES_CBC", keysize: "128", integ: "HMAC_SHA2_256_128", prf: "PRF_HMAC_SHA2_256", dh: "ECP_256",
			espEncr: "AES_CBC", espKeysize: "128", espInteg: "HMAC_SHA2_256_128"})
		if ismInit && x.d.Status().Counters.InvalidKE == 0 {
			t.Error("ISM did not count the INVALID_KE_PAYLOAD retry")
		}
	})
}
