package bench

import (
	"os"

	"github.com/ismgw/ism/internal/swantest/charon"
)

// swanEnv is ISM's namespace and the failover benchmark's first charon's
// (charon.Env), removed when the benchmark ends. It needs root and
// strongSwan.
func swanEnv(h *harness) *charon.Env {
	if os.Geteuid() != 0 {
		h.Skip("needs root: network namespaces and strongSwan's charon")
	}
	if why := swanAvailable(); why != "" {
		h.Fatalf("bench: %s", why)
	}
	return charon.NewEnv(h, tempDir(h))
}

// swanConf is a charon at local for the benchmark's tunnel: IKEv1 main
// mode with a pre-shared key, one child "net" for 203.0.113.0/24 (charon)
// and 198.51.100.0/24 (ISM), routes through its userspace ESP device so
// that answers go back through the tunnel.
func swanConf(local string) charon.Conf {
	return charon.Conf{InstallRoutes: true, Swanctl: swanctlConf(benchPSK, swanPeer{
		Name: "ism", Local: local, Remote: charon.ISMAddr.String(), IKE: "aes128-sha1-modp2048", ESP: "aes128-sha1",
		Children: []swanChild{{Name: "net", LocalTS: "203.0.113.0/24", RemoteTS: "198.51.100.0/24"}},
	})}
}

// benchPSK is the pre-shared key of the failover benchmark's tunnel.
const benchPSK = "ismbench-failover-psk"
