package ism

import (
	"testing"

	"github.com/ismgw/ism/internal/swantest"
)

// TestSwanV2Smoke: an IKEv2 tunnel with a pre-shared key by address.
func TestSwanV2Smoke(t *testing.T) {
	t.Parallel()
	for _, role := range swanRoles {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			side := ismConf{global: "ipsec ike-version 2\n" + pskRule("aes128", "sha256", 14, ""), transforms: []string{"esp-aes128-gcm16"}, tunnels: []ismTunnel{{}}}
			x := newLab(t, swanSpec(side, swanPeer{Version: 2, Proposals: "aes128-sha256-modp2048", ESP: "aes128gcm16"}, swantest.Conf{}))
			x.bringUp(t, role)
			x.traffic(t, ismHost, swanHost)
			t.Log(x.show(t, "show ike sa"))
			t.Log(x.show(t, "show ipsec tunnel detail"))
			t.Log(x.show(t, "show ipsec statistics"))
		})
	}
}
