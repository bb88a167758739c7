package ring

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// steer is the XDP side of a Conn: a program on the interface that hands
// ESP and AH packets for the local addresses to the AF_XDP sockets and
// passes everything else to the kernel, with its two maps.
type steer struct {
	local *ebpf.Map // HASH: 16-byte address (IPv4-mapped for IPv4) → 1
	xsks  *ebpf.Map // XSKMAP: receive queue → AF_XDP socket
	prog  *ebpf.Program
	link  link.Link
	mode  string // "native" or "generic"
}

// Offsets into an Ethernet frame (IEEE 802.3), an IPv4 header (RFC 791
// §3.1) and an IPv6 header (RFC 8200 §3).
const (
	ethType     = 12
	ethLen      = 14
	v4VersIHL   = ethLen + 0
	v4FlagsFrag = ethLen + 6
	v4Proto     = ethLen + 9
	v4Dst       = ethLen + 16
	v4End       = ethLen + 20
	v6Next      = ethLen + 6
	v6Dst       = ethLen + 24
	v6End       = ethLen + 40
	protoESP    = 50
	protoAH     = 51
	xdpPass     = 2
)

// program is the XDP program. It takes (redirects to the socket of its
// receive queue) only:
//   - IPv4 without options, not a fragment (MF clear, offset 0), protocol
//     ESP or AH;
//   - IPv6 whose next header right after the fixed header is ESP or AH
//     (a fragment header, or any extension header, goes to the kernel);
//
// and only when the destination is one of the local addresses. The kernel
// keeps the rest: fragments (it reassembles them and hands them to the raw
// socket path), ICMP errors, IKE, ESP in UDP, ARP and neighbour discovery,
// and traffic for other addresses.
func program(local, xsks *ebpf.Map) asm.Instructions {
	// r6 = ctx, r2 = data, r3 = data_end (struct xdp_md).
	// The byte order of 16-bit constants compared with loaded packet
	// fields is the machine's: the loads are native-endian (x86, arm64
	// little-endian).
	const (
		ipv4LE     = 0x0008 // 0x0800 as loaded little-endian
		ipv6LE     = 0xdd86 // 0x86dd
		fragMaskLE = 0xff3f // 0x3fff: MF and the fragment offset
		mappedLE   = -65536 // bytes 00 00 ff ff as a little-endian u32 (0xffff0000)
	)
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, v4End),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethType, asm.Half),
		asm.JEq.Imm(asm.R5, ipv4LE, "v4"),
		asm.JEq.Imm(asm.R5, ipv6LE, "v6"),
		asm.Ja.Label("pass"),

		asm.LoadMem(asm.R5, asm.R2, v4VersIHL, asm.Byte).WithSymbol("v4"),
		asm.JNE.Imm(asm.R5, 0x45, "pass"),
		asm.LoadMem(asm.R5, asm.R2, v4FlagsFrag, asm.Half),
		asm.And.Imm(asm.R5, fragMaskLE),
		asm.JNE.Imm(asm.R5, 0, "pass"),
		asm.LoadMem(asm.R5, asm.R2, v4Proto, asm.Byte),
		asm.JEq.Imm(asm.R5, protoESP, "v4key"),
		asm.JNE.Imm(asm.R5, protoAH, "pass"),
		asm.StoreImm(asm.RFP, -16, 0, asm.Word).WithSymbol("v4key"),
		asm.StoreImm(asm.RFP, -12, 0, asm.Word),
		asm.StoreImm(asm.RFP, -8, mappedLE, asm.Word),
		asm.LoadMem(asm.R5, asm.R2, v4Dst, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R5, asm.Word),
		asm.Ja.Label("lookup"),

		asm.Mov.Reg(asm.R4, asm.R2).WithSymbol("v6"),
		asm.Add.Imm(asm.R4, v6End),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, v6Next, asm.Byte),
		asm.JEq.Imm(asm.R5, protoESP, "v6key"),
		asm.JNE.Imm(asm.R5, protoAH, "pass"),
		asm.LoadMem(asm.R5, asm.R2, v6Dst, asm.DWord).WithSymbol("v6key"),
		asm.StoreMem(asm.RFP, -16, asm.R5, asm.DWord),
		asm.LoadMem(asm.R5, asm.R2, v6Dst+8, asm.DWord),
		asm.StoreMem(asm.RFP, -8, asm.R5, asm.DWord),

		asm.LoadMapPtr(asm.R1, local.FD()).WithSymbol("lookup"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMapPtr(asm.R1, xsks.FD()),
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word), // rx_queue_index
		asm.Mov.Imm(asm.R3, xdpPass),              // no socket on the queue: to the kernel
		asm.FnRedirectMap.Call(),
		asm.Return(),

		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}
}

// newSteer loads the program with its maps and attaches it to ifindex,
// natively where the driver has XDP, else in generic mode.
func newSteer(ifindex, queues int, local []netip.Addr) (_ *steer, err error) {
	s := &steer{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.local, err = ebpf.NewMap(&ebpf.MapSpec{Name: "ism_local", Type: ebpf.Hash, KeySize: 16, ValueSize: 1, MaxEntries: 256}); err != nil {
		return nil, fmt.Errorf("%w: local address map: %w", ErrNoBPF, err)
	}
	for _, a := range local {
		if err := s.local.Put(a.As16(), uint8(1)); err != nil {
			return nil, fmt.Errorf("%w: local address map: %w", ErrNoBPF, err)
		}
	}
	if s.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "ism_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)}); err != nil {
		return nil, fmt.Errorf("%w: socket map: %w", ErrNoBPF, err)
	}
	if s.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "ism_esp_steer", Type: ebpf.XDP, License: "BSD",
		Instructions: program(s.local, s.xsks)}); err != nil {
		return nil, fmt.Errorf("%w: XDP program: %w", ErrNoBPF, err)
	}
	s.mode = "native"
	s.link, err = link.AttachXDP(link.XDPOptions{Program: s.prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil && !errors.Is(err, errBusy) {
		s.mode = "generic"
		s.link, err = link.AttachXDP(link.XDPOptions{Program: s.prog, Interface: ifindex, Flags: link.XDPGenericMode})
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrXDPAttach, err)
	}
	return s, nil
}

// addSocket makes the program hand queue's packets to fd.
func (s *steer) addSocket(queue, fd int) error {
	return s.xsks.Put(uint32(queue), uint32(fd))
}

func (s *steer) close() {
	if s.link != nil {
		_ = s.link.Close()
	}
	if s.prog != nil {
		_ = s.prog.Close()
	}
	if s.xsks != nil {
		_ = s.xsks.Close()
	}
	if s.local != nil {
		_ = s.local.Close()
	}
}
