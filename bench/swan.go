package bench

import (
	"fmt"
	"os"
	"testing"

	"github.com/ismgw/ism/internal/swantest"
)

// swanTB lets internal/swantest, which reports to a testing.TB, run under
// the benchmark harness: failures end the run with their error, cleanups
// run with the harness's, temporary directories are removed at the end.
// swantest calls only the methods defined here; the embedded interface is
// nil and is there for the type's sake.
type swanTB struct {
	testing.TB
	h *harness
}

var _ testing.TB = swanTB{}

func (s swanTB) Helper()                           {}
func (s swanTB) Logf(string, ...any)               {}
func (s swanTB) Failed() bool                      { return false }
func (s swanTB) Cleanup(f func())                  { s.h.Cleanup(f) }
func (s swanTB) Skip(args ...any)                  { s.h.Skip(args...) }
func (s swanTB) Fatal(args ...any)                 { s.h.Fatalf("%s", fmt.Sprint(args...)) }
func (s swanTB) Fatalf(format string, args ...any) { s.h.Fatalf(format, args...) }

func (s swanTB) TempDir() string {
	d, err := os.MkdirTemp("", "ismbench-")
	if err != nil {
		s.h.Fatalf("bench: temporary directory: %v", err)
	}
	s.h.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// swanConf is a charon at local for the benchmark's tunnel: IKEv1 main
// mode with a pre-shared key, one child "net" for 203.0.113.0/24 (charon)
// and 198.51.100.0/24 (ISM), routes through its userspace ESP device so
// that answers go back through the tunnel.
func swanConf(local string) swantest.Conf {
	return swantest.Conf{InstallRoutes: true, Swanctl: fmt.Sprintf(`connections {
  ism {
    version = 1
    local_addrs = %[1]s
    remote_addrs = %[2]s
    proposals = aes128-sha1-modp2048
    rekey_time = 0
    local {
      auth = psk
      id = %[1]s
    }
    remote {
      auth = psk
      id = %[2]s
    }
    children {
      net {
        local_ts = 203.0.113.0/24
        remote_ts = 198.51.100.0/24
        esp_proposals = aes128-sha1
        mode = tunnel
        start_action = none
      }
    }
  }
}
secrets {
  ike-1 {
    id-a = %[1]s
    id-b = %[2]s
    secret = %[3]q
  }
}
`, local, swantest.ISMAddr, benchPSK)}
}

// benchPSK is the pre-shared key of the failover benchmark's tunnel.
const benchPSK = "ismbench-failover-psk"
