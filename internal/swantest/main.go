package swantest

import (
	"flag"
	"os"
	"strconv"
	"testing"
)

// Parallel is how many tests Main runs at once by default.
const Parallel = 8

// Main runs a package's tests (call it from TestMain) with Parallel of
// them at once, instead of one per CPU, unless -test.parallel says
// otherwise: tests against charon spend their time waiting for its timers
// (rekeys, DPD, hold-downs) in namespaces of their own, not on the CPU.
func Main(m *testing.M) { MainParallel(m, Parallel) }

// MainParallel is Main with n tests at once by default.
func MainParallel(m *testing.M, n int) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(n))
	}
	os.Exit(m.Run())
}
