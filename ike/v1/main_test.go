package v1

import (
	"testing"

	"github.com/ismgw/ism/internal/swantest"
)

// TestMain runs swantest.Parallel tests at once: the interop tests wait on
// charon's timers, not on the CPU.
func TestMain(m *testing.M) { swantest.Main(m) }
