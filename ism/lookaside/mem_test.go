package lookaside

import (
	"testing"
	"unsafe"
)

// TestEntrySize keeps a path's SA entry at 64 bytes (issue 13: memory per
// tunnel): a path holds each of its SAs in a table of entries, and each
// table is an allocation of its own.
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(saEntry{}); n > 64 {
		t.Errorf("saEntry is %d bytes, over 64", n)
	}
}
