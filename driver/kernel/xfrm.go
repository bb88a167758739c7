package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ismgw/ism/driver"
	"github.com/ismgw/ism/transform"
)

// Mode is the IPsec mode of an XFRM SA or policy template.
type Mode uint8

// Modes, numbered as XFRM_MODE_TRANSPORT and XFRM_MODE_TUNNEL.
const (
	Transport Mode = 0
	Tunnel    Mode = 1
)

func (m Mode) String() string {
	if m == Tunnel {
		return "tunnel"
	}
	return "transport"
}

// Mark is an XFRM mark: a packet matches when its mark ANDed with Mask
// equals Value. The zero Mark matches every packet.
type Mark struct {
	Value, Mask uint32
}

// SAID identifies an XFRM SA, after strongSwan's kernel_ipsec_sa_id_t: the
// kernel finds an SA by destination, SPI, protocol and mark; the source is
// needed to install one.
type SAID struct {
	Src, Dst netip.Addr
	SPI      uint32
	Protocol transform.Protocol
	Mark     Mark
}

func (id SAID) String() string {
	return fmt.Sprintf("0x%08x %s->%s/%s", id.SPI, id.Src, id.Dst, id.Protocol)
}

// Encap is UDP encapsulation of ESP (RFC 3948), XFRMA_ENCAP: ports in host
// byte order, 4500 on both sides unless a NAT changed them.
type Encap struct {
	SrcPort, DstPort uint16
}

// Lifetime holds an SA's limits; zero means no limit. The kernel sends an
// expire event at the soft limit and deletes the SA at the hard one.
type Lifetime struct {
	SoftBytes, HardBytes     uint64
	SoftPackets, HardPackets uint64
	SoftAdd, HardAdd         time.Duration // since the SA was added
	SoftUse, HardUse         time.Duration // since its first use
}

// Offload asks the kernel to hand the SA to a NIC (XFRMA_OFFLOAD_DEV).
type Offload struct {
	Ifindex int  // the device, in the SA's network namespace
	Packet  bool // full packet offload (XFRM_OFFLOAD_PACKET) rather than crypto offload
}

// SAConfig is what an SA is installed with, after kernel_ipsec_add_sa_t.
// The keys are read, never kept; the caller zeroes its own copies.
type SAConfig struct {
	Mode      Mode
	Transform transform.Transform
	CipherKey driver.Key // including the 4-byte salt of AEAD transforms
	AuthKey   driver.Key
	// Inbound marks an SA that decapsulates; it matters for NIC offload.
	Inbound bool
	// ReplayWindow is the anti-replay window in packets; 0 disables it
	// (outbound SAs). Windows above 32 or with ESN use the bitmap form.
	ReplayWindow int
	ESN          bool
	Encap        *Encap
	Lifetime     Lifetime
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
