package config

import (
	"testing"
	"unsafe"
)

// TestTunnelSize keeps the tunnel's configuration within its allocation
// size class (issue 13: memory per tunnel): every tunnel holds one, and
// an object over 512 bytes with pointers carries an 8-byte header, so
// 696 bytes fill the 704-byte class. A field that crosses it costs the
// next class, 64 bytes a tunnel: keep the small fields together and
// what only manual tunnels need in their SAs.
func TestTunnelSize(t *testing.T) {
	if n := unsafe.Sizeof(Tunnel{}); n > 696 {
		t.Errorf("Tunnel is %d bytes, over 696", n)
	}
}

// digested returns sa with the digest of its keys, as Parse leaves it.
func digested(sa SA) SA {
	sa.keyDigest = digestKeys(&sa)
	return sa
}
