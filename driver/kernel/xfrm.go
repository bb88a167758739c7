package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// xfrmMode is XFRM's number for a mode: XFRM_MODE_TRANSPORT 0,
// XFRM_MODE_TUNNEL 1.
func xfrmMode(m ipsec.Mode) uint8 {
	if m == ipsec.Tunnel {
		return 1
	}
	return 0
}

// Mark is an XFRM mark: a packet matches when its mark ANDed with Mask
// equals Value. The zero Mark matches every packet.
type Mark struct {
	Value, Mask uint32
}

// Encap is UDP encapsulation of ESP (RFC 3948), XFRMA_ENCAP: ports in host
// byte order, 4500 on both sides unless a NAT changed them.
type Encap struct {
	SrcPort, DstPort uint16
}

// Offload asks the kernel to hand the SA to a NIC (XFRMA_OFFLOAD_DEV).
type Offload struct {
	Ifindex int  // the device, in the SA's network namespace
	Packet  bool // full packet offload (XFRM_OFFLOAD_PACKET) rather than crypto offload
}

// SAConfig is what an SA is installed with, after kernel_ipsec_add_sa_t.
// The SA's identity (ipsec.SAID: destination, SPI, protocol) is given
// beside it; the kernel finds an SA by that identity, and needs its source
// to install it. The keys are read, never kept; the caller zeroes its own
// copies.
type SAConfig struct {
	// Src is the SA's source address (the outer source in tunnel mode).
	Src       netip.Addr
	Mode      ipsec.Mode
	Transform transform.Transform
	CipherKey ipsec.Key // including the 4-byte salt of AEAD transforms
	AuthKey   ipsec.Key
	// Inbound marks an SA that decapsulates; it matters for NIC offload.
	Inbound bool
	// ReplayWindow is the anti-replay window in packets; 0 disables it
	// (outbound SAs). Windows above 32 or with ESN use the bitmap form.
	ReplayWindow int
	ESN          bool
	Encap        *Encap
	// Limits are the kernel's soft and hard limits, times counted from
	// when the SA was added; the kernel sends an expire event at the soft
	// limit and deletes the SA at the hard one.
	Limits ipsec.Limits
	// ReqID ties the SA to the policies whose templates name the same ID.
	ReqID uint32
	// IfID binds the SA to an XFRM interface (XFRMA_IF_ID); 0 for none.
	IfID    uint32
	Offload *Offload
}

// SAUsage is what QuerySA reports, after strongSwan's query_sa.
type SAUsage struct {
	Bytes, Packets uint64
	Added          time.Time
	FirstUsed      time.Time // zero if never used
	// LastUsed is XFRMA_LASTUSED, zero if the kernel does not report it
	// (Linux 6.1 does not for ESP SAs: use FirstUsed and the counters).
	LastUsed time.Time
	// ReplayDrops and IntegrityFailures are the kernel's per-SA counters.
	ReplayDrops, IntegrityFailures uint32
}

// Errors of the XFRM API. Each error returned wraps one of them, or the
// kernel's errno, or both.
var (
	// ErrNoSA: no SA or policy matches (ESRCH, ENOENT).
	ErrNoSA = errors.New("kernel: no such SA or policy")
	// ErrExists: an SA or policy with that identity exists (EEXIST).
	ErrExists = errors.New("kernel: SA or policy exists")
	// ErrNotSupported: the kernel lacks the protocol or an algorithm
	// (EPROTONOSUPPORT, ENOSYS), or the transform has no kernel mapping.
	ErrNotSupported = errors.New("kernel: not supported by this kernel")
	errNoMapping    = fmt.Errorf("%w: no kernel algorithm for transform", ErrNotSupported)
)
