package driver

import "fmt"

// MaxPacket is the largest packet a Buffer holds between its headroom and
// tailroom: a 9000-byte jumbo frame and then some.
const MaxPacket = 9216

// Status is the outcome of an Op, after rte_crypto_op_status.
type Status uint8

// Statuses.
const (
	NotProcessed   Status = iota // not yet run
	OK                           // done; for inbound ops the ICV verified
	AuthFailed                   // the ICV did not verify
	InvalidSession               // the session is unknown or closed
	InvalidArgs                  // offsets or lengths are out of range
	Fault                        // the device failed the op
)

var statusNames = [...]string{"not-processed", "ok", "auth-failed", "invalid-session", "invalid-args", "fault"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status-%d", uint8(s))
}

// Buffer is one packet in memory that a driver may own. The packet is
// Mem[Off:Off+Len]; bytes before Off are headroom, bytes after are tailroom.
// Handle is the owning driver's reference to the memory (an rte_mbuf
// pointer); it is zero for Go memory.
type Buffer struct {
	Mem    []byte
	Off    int
	Len    int
	Handle uintptr
}

// Bytes returns the packet.
func (b *Buffer) Bytes() []byte { return b.Mem[b.Off : b.Off+b.Len] }

// Headroom returns the bytes free before the packet.
func (b *Buffer) Headroom() int { return b.Off }

// Tailroom returns the bytes free after the packet.
func (b *Buffer) Tailroom() int { return len(b.Mem) - b.Off - b.Len }

// Op is one crypto operation on one packet, after rte_crypto_sym_op. All
// offsets are relative to the start of the packet (Buf.Off) and may reach
// into the tailroom (DigestOff may point past the packet).
//
// Outbound, the driver encrypts Mem[CipherOff:+CipherLen] in place and writes
// the ICV at DigestOff; for a cipher+HMAC chain the ICV covers
// [AuthOff:+AuthLen] after encryption, for an AEAD the AAD is AAD[:AADLen].
// Inbound, it verifies the ICV at DigestOff first and decrypts only then.
// IV[:IVLen] is the explicit IV carried in the packet; the driver prepends
// the session's salt for AEAD nonces.
//
// Op has no field of type any, so queueing it allocates nothing. Tag belongs
// to the submitter, which uses it to find the packet again on completion.
type Op struct {
	Session   Session
	Buf       *Buffer
	CipherOff int
	CipherLen int
	AuthOff   int
	AuthLen   int
	DigestOff int
	AAD       [12]byte
	AADLen    uint8
	IV        [16]byte
	IVLen     uint8
	Status    Status
	Tag       uint64
}

// Region returns Buf.Mem[Buf.Off+off : Buf.Off+off+n], or false if that is
// outside the buffer's memory.
func (op *Op) Region(off, n int) ([]byte, bool) {
	b := op.Buf
	if b == nil || off < 0 || n < 0 {
		return nil, false
	}
	start := b.Off + off
	if b.Off < 0 || start+n > len(b.Mem) || start+n < start {
		return nil, false
	}
	return b.Mem[start : start+n], true
}
