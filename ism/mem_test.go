package ism

import (
	"testing"
	"unsafe"
)

// TestTunnelSizes keeps the gateway's per-tunnel structures within their
// allocation size classes (issue 13: memory per tunnel): a tunnel within
// 224 bytes. A field that crosses it costs the next class, 16 or more
// bytes a tunnel: put what only some tunnels need in tunnelRare.
func TestTunnelSizes(t *testing.T) {
	for _, x := range []struct {
		name      string
		size, max uintptr
	}{
		{"Tunnel", unsafe.Sizeof(Tunnel{}), 224},
	} {
		if x.size > x.max {
			t.Errorf("%s is %d bytes, over %d", x.name, x.size, x.max)
		}
	}
}
