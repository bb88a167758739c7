package fallback

import (
	"testing"
	"unsafe"
)

// TestSessionSize keeps a session at 96 bytes, a size class (issue 13:
// memory per tunnel): every SA has one.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n > 96 {
		t.Errorf("session is %d bytes, over 96", n)
	}
}
