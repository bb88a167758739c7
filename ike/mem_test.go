package ike

import (
	"testing"
	"unsafe"
)

// TestTunnelSize keeps a tunnel's IKE configuration at 400 bytes (issue
// 13: memory per tunnel): the daemons hold one for every tunnel, in one
// array, so every byte counts; keep the small fields together.
func TestTunnelSize(t *testing.T) {
	if n := unsafe.Sizeof(Tunnel{}); n > 400 {
		t.Errorf("Tunnel is %d bytes, over 400", n)
	}
}

// TestPolicySize keeps a policy at 48 bytes: every IKE SA holds the one it
// negotiated (issue 13).
func TestPolicySize(t *testing.T) {
	if n := unsafe.Sizeof(Policy{}); n > 48 {
		t.Errorf("Policy is %d bytes, over 48", n)
	}
}
