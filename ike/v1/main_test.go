package v1

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs more tests at once than the default of one per CPU unless
// -test.parallel says otherwise: the interop tests spend their time
// waiting for charon's timers (rekeys, DPD, hold-downs) in namespaces of
// their own, not on the CPU.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}
