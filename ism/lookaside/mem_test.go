package lookaside

import (
	"testing"
	"unsafe"
)

// TestEntrySize keeps a path at 176 bytes, a size class, and its SA entry
// at 64 (issue 13: memory per tunnel): a path holds each of its SAs in a
// table of entries, and each table is an allocation of its own.
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(saEntry{}); n > 64 {
		t.Errorf("saEntry is %d bytes, over 64", n)
	}
	if n := unsafe.Sizeof(path{}); n > 176 {
		t.Errorf("path is %d bytes, over 176", n)
	}
}
