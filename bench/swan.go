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
	return swantest.Conf{InstallRoutes: true, Swanctl: swanctlConf(benchPSK, swanPeer{
		Name: "ism", Local: local, Remote: swantest.ISMAddr.String(), IKE: "aes128-sha1-modp2048", ESP: "aes128-sha1",
		Children: []swanChild{{Name: "net", LocalTS: "203.0.113.0/24", RemoteTS: "198.51.100.0/24"}},
	})}
}

// benchPSK is the pre-shared key of the failover benchmark's tunnel.
const benchPSK = "ismbench-failover-psk"
