package v2

import (
	"testing"

	"github.com/ismgw/ism/ike"
)

// TestInteropPSKAddress: identities are the addresses; IKE
// aes128-sha256-modp2048, ESP aes128gcm16 without PFS.
func TestInteropPSKAddress(t *testing.T) {
	roles(t, func(t *testing.T, ismInit bool) {
		cfg := pskConfig(ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14})
		cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
		x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-modp2048", ESPProposals: "aes128gcm16"}.render())
		x.up(t, ismInit)
		x.check(t, swanWant{encr: "AES_CBC", keysize: "128", integ: "HMAC_SHA2_256_128", prf: "PRF_HMAC_SHA2_256", dh: "MODP_2048",
			espEncr: "AES_GCM_16", espKeysize: "128"})
	})
}
