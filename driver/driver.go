package driver

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// Action says where the IPsec protocol runs for a session, after
// rte_security_session_action_type.
type Action uint8

// Actions.
const (
	// LookasideCrypto: package offload frames ESP/AH; the driver runs the
	// cipher and the ICV on a queue pair and completes asynchronously.
	LookasideCrypto Action = iota
	// CPUCrypto: like LookasideCrypto, but synchronous on the calling CPU
	// (the driver implements Synchronous).
	CPUCrypto
	// LookasideProtocol: the driver frames ESP itself; ops carry whole
	// packets.
	LookasideProtocol
	// InlineProtocol: packets never come back to ISM; the kernel or the NIC
	// encapsulates on the wire path (Linux XFRM).
	InlineProtocol
)

var actionNames = [...]string{"lookaside-crypto", "cpu-crypto", "lookaside-protocol", "inline-protocol"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action-%d", uint8(a))
}

// Capability is one thing a driver can do: a transform under an action.
type Capability struct {
	Transform transform.Transform
	Action    Action
}

// Feature is a bit of a driver's feature mask, after RTE_CRYPTODEV_FF_*.
type Feature uint64

// Features.
const (
	FeatureInPlace     Feature = 1 << iota // ops are processed in place
	FeatureHardware                        // a hardware device does the work
	FeatureCPUAESNI                        // the CPU's AES instructions are used
	FeatureESN                             // protocol actions: 64-bit sequence numbers
	FeatureBufferPool                      // the driver owns packet memory (BufferPool)
	FeatureSynchronous                     // the driver implements Synchronous
	FeatureOutOfOrder                      // completions may come back out of order
)

var featureNames = []string{"in-place", "hardware", "cpu-aesni", "esn", "buffer-pool", "synchronous", "out-of-order"}

func (f Feature) String() string {
	var names []string
	for i, n := range featureNames {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

// Info describes a driver, after rte_cryptodev_info.
type Info struct {
	Capabilities []Capability
	Features     Feature
	QueuePairs   int // number of queue pairs, at least 1
	QueueDepth   int // ops a queue pair holds before Enqueue runs short
	// Headroom and Tailroom are the bytes a driver needs before and after a
	// packet in its Buffer beyond what the IPsec framing itself takes.
	Headroom, Tailroom int
}

// Supports reports whether the driver can run t under action a.
func (i *Info) Supports(t transform.Transform, a Action) bool {
	for _, c := range i.Capabilities {
		if c.Transform == t && c.Action == a {
			return true
		}
	}
	return false
}

// SessionConfig is what a session is made from. The keys are copied by
// NewSession; the caller zeroes its own copy when it no longer needs it.
type SessionConfig struct {
	Action    Action
	Transform transform.Transform
	Direction ipsec.Direction
	SPI       uint32
	// CipherKey is the encryption keying material, including the 4-byte
	// salt of AEAD transforms (RFC 4106 §8.1, RFC 7634 §2).
	CipherKey ipsec.Key
	AuthKey   ipsec.Key
	ESN       bool
	// ReplayWindow, SoftBytes and the other limits matter only to protocol
	// actions, where the driver runs ESP itself.
	ReplayWindow         int
	SoftBytes, HardBytes uint64
}

// Session holds the keys of one SA in one direction inside a driver. A
// session is safe for concurrent use by the driver's queue pairs.
type Session interface {
	// Close releases the session and zeroes the keys the driver holds.
	// Ops that reference a closed session complete with InvalidSession.
	Close() error
}

// QueuePair is one submission and completion ring of a driver. A queue pair
// is not safe for concurrent use: one goroutine owns it.
type QueuePair interface {
	// Enqueue submits ops and returns how many were accepted, from the
	// front of ops; a short count means the queue is full (backpressure).
	// Accepted ops belong to the driver until dequeued.
	Enqueue(ops []*Op) int
	// Dequeue fills ops with completed operations and returns how many.
	// Completions may come back in any order (FeatureOutOfOrder); each
	// carries its outcome in Op.Status.
	Dequeue(ops []*Op) int
	// Stats returns the queue pair's counters.
	Stats() QueueStats
}

// QueueStats counts a queue pair's work.
type QueueStats struct {
	Enqueued, Dequeued, EnqueueErrors, Faults uint64
}

// Driver is a crypto engine with queues.
type Driver interface {
	// Name is the driver's registry name, e.g. "software".
	Name() string
	// Info describes capabilities, features and queue layout. It does not
	// change after the driver is opened.
	Info() Info
	// NewSession creates a session; it fails with ErrUnsupported when the
	// transform or action is not supported.
	NewSession(SessionConfig) (Session, error)
	// QueuePair returns queue pair i, 0 <= i < Info().QueuePairs.
	QueuePair(i int) QueuePair
	// Events reports faults and recoveries; the channel is closed by Close.
	Events() <-chan Event
	// Close stops the driver; its sessions and queue pairs become unusable.
	Close() error
}

// Synchronous is implemented by drivers that can run ops on the calling
// goroutine (the CPUCrypto action). Process completes every op it is given
// and returns len(ops).
type Synchronous interface {
	Process(ops []*Op) int
}

// BufferPool is implemented by drivers that own packet memory, so that a
// packet read from a socket or TUN device lands where the device can reach it
// with no copy (DPDK mbufs).
type BufferPool interface {
	// AllocBuffers fills bufs with fresh buffers and returns how many it
	// could get; each has at least MaxPacket bytes with Off at Headroom.
	AllocBuffers(bufs []*Buffer) int
	// FreeBuffers returns buffers to the driver.
	FreeBuffers(bufs []*Buffer)
}

// EventKind classifies an Event.
type EventKind uint8

// Event kinds.
const (
	EventFault     EventKind = iota // the device failed; its sessions are unusable
	EventRecovered                  // the device works again
)

func (k EventKind) String() string {
	if k == EventRecovered {
		return "recovered"
	}
	return "fault"
}

// Event is a driver fault or recovery.
type Event struct {
	Driver string
	Kind   EventKind
	Err    error
}

// Errors.
var (
	// ErrUnsupported: the driver cannot run this transform or action.
	ErrUnsupported = errors.New("driver: transform or action not supported")
	// ErrNotBuilt: the driver is not in this build (build tags).
	ErrNotBuilt = errors.New("driver: not built into this binary")
	// ErrUnavailable: the driver is built but the host lacks what it needs.
	ErrUnavailable = errors.New("driver: not available on this host")
	// ErrClosed: the driver or session was closed.
	ErrClosed = errors.New("driver: closed")
	// ErrBadKey: a key has the wrong length for the transform.
	ErrBadKey = errors.New("driver: key length does not match the transform")
)

// CheckConfig validates the key lengths of c against its transform.
func CheckConfig(c *SessionConfig) error {
	t := c.Transform
	if !t.Valid() {
		return fmt.Errorf("%w: %v", ErrUnsupported, t)
	}
	if len(c.CipherKey) != t.CipherKeyLen() {
		return fmt.Errorf("%w: %s cipher key is %d bytes, want %d", ErrBadKey, t, len(c.CipherKey), t.CipherKeyLen())
	}
	if len(c.AuthKey) != t.AuthKeyLen() {
		return fmt.Errorf("%w: %s auth key is %d bytes, want %d", ErrBadKey, t, len(c.AuthKey), t.AuthKeyLen())
	}
	return nil
}
