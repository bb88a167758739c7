package transport

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/netns"
	"github.com/ismgw/ism/offload"
)

// arrival is a datagram a handler saw: IKE, or ESP read by Serve.
type arrival struct {
	ike         bool
	local, from netip.AddrPort
	data        []byte
}

// serveRecorder is a Handler that reads its sockets and reports every IKE
// message and ESP packet.
type serveRecorder struct {
	c     chan arrival
	mu    sync.Mutex
	drops int
}

func (h *serveRecorder) IKE(local, remote netip.AddrPort, msg []byte) {
	h.c <- arrival{ike: true, local: local, from: remote, data: bytes.Clone(msg)}
}

func (h *serveRecorder) Serve(r Reader) {
	pkts := make([]*offload.Packet, 8)
	for i := range pkts {
		pkts[i] = offload.NewPacket()
	}
	for {
		n, err := r.Read(pkts)
		if err != nil {
			return
		}
		for _, pk := range pkts[:n] {
			h.c <- arrival{local: pk.Outer.Dst, from: pk.Outer.Src, data: bytes.Clone(pk.Buf.Bytes())}
		}
	}
}

func (h *serveRecorder) Drop(offload.DropReason) {
	h.mu.Lock()
	h.drops++
	h.mu.Unlock()
}

// TestWildcardSocket: two endpoints of one VR, on two addresses of a
// namespace, share one socket per port and family (ss shows one), each
// datagram read is filed under the address it arrived on — IKE to the
// IKE daemon, ESP in UDP to Serve, coalesced runs (GRO) too — IKE to an
// address no endpoint listens on is dropped and counted, and what each
// endpoint sends, one IKE message or a GSO batch, leaves from its own
// address. IPv4 and IPv6.
func TestWildcardSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test makes a network namespace")
	}
	l := netlab.New(t)
	name := l.NS("w")
	for _, a := range []string{"192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32", "192.0.2.9/32",
		"2001:db8::1/128", "2001:db8::2/128", "2001:db8::3/128", "2001:db8::9/128"} {
		l.MustRun(name, "ip", "addr", "add", a, "dev", "lo", "nodad")
	}
	ns, err := netns.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h := &serveRecorder{c: make(chan arrival, 256)}
	e := NewEndpoints(h, nil)
	defer e.Close()
	v := &vr.VR{Name: "transport", NS: ns}
	const port = 4500
	for _, fam := range []struct{ a1, a2, stray, peer string }{
		{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.9"},
		{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::9"},
	} {
		a1, a2 := netip.MustParseAddr(fam.a1), netip.MustParseAddr(fam.a2)
		ep1, ep2 := e.Get(v, a1), e.Get(v, a2)
		s1, err := ep1.Socket(UDP, port)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := ep2.Socket(UDP, port)
		if err != nil {
			t.Fatal(err)
		}
		if s1.base == nil || s1.base != s2.base {
			t.Fatalf("%s: the endpoints' sockets %p and %p are not views of one socket", fam.a1, s1.base, s2.base)
		}
		if s1.Local() != netip.AddrPortFrom(a1, port) || s2.Local() != netip.AddrPortFrom(a2, port) {
			t.Errorf("views' local addresses %v and %v, want %v and %v port %d", s1.Local(), s2.Local(), a1, a2, port)
		}
		var peer *net.UDPConn
		err = ns.Do(func() (err error) {
			peer, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(fam.peer), 0)))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		from := netip.MustParseAddrPort(peer.LocalAddr().String())
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())

		// In: IKE (the non-ESP marker) and ESP to each address, IKE to
		// a stray address of the namespace, and a GSO run of ESP.
		ike := append(make([]byte, 4), []byte("ike message")...)
		esp := append([]byte{0, 0, 0x10, 0x01}, bytes.Repeat([]byte{0xe5}, 96)...)
		send := func(to netip.Addr, b, oob []byte) {
			t.Helper()
			if _, _, err := peer.WriteMsgUDPAddrPort(b, oob, netip.AddrPortFrom(to, port)); err != nil {
				t.Fatal(err)
			}
		}
		send(netip.MustParseAddr(fam.stray), ike, nil)
		const run = 6
		for _, a := range []netip.Addr{a1, a2} {
			send(a, ike, nil)
			send(a, esp, nil)
			send(a, bytes.Repeat(esp, run), putGSO(make([]byte, cmsgSpace), uint16(len(esp)), nil))
		}
		type key struct {
			ike         bool
			local, from netip.AddrPort
		}
		want := map[key]int{}
		for _, a := range []netip.Addr{a1, a2} {
			want[key{ike: true, local: netip.AddrPortFrom(a, port), from: from}] = 1
			want[key{local: netip.AddrPortFrom(a, port), from: from}] = 1 + run
		}
		for n := 2 * (2 + run); n > 0; n-- {
			select {
			case got := <-h.c:
				if !got.ike && !bytes.Equal(got.data, esp) || got.ike && !bytes.Equal(got.data, ike[4:]) {
					t.Errorf("%+v: wrong bytes", got)
				}
				k := key{got.ike, got.local, got.from}
				if want[k] == 0 {
					t.Errorf("unexpected %+v", k)
				}
				want[k]--
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: %d datagrams still to come: %v", fam.a1, n, want)
			}
		}
		h.mu.Lock()
		if h.drops != 1 {
			t.Errorf("%s: %d drops, want 1 (the IKE message to %s)", fam.a1, h.drops, fam.stray)
		}
		h.drops = 0
		h.mu.Unlock()

		// Out: an IKE message and a GSO batch from each view.
		for _, s := range []*Socket{s1, s2} {
			if err := s.WriteTo(ike, from); err != nil {
				t.Fatal(err)
			}
			b := sendBatch{s: s}
			for range run {
				b.msgs = append(b.msgs, ipv4.Message{Buffers: [][]byte{esp}, OOB: s.src, Addr: net.UDPAddrFromAddrPort(from)})
			}
			if n := b.send(); n != run {
				t.Errorf("%v: sent %d of %d", s.Local(), n, run)
			}
		}
		srcs := map[netip.AddrPort]int{}
		buf := make([]byte, 2048)
		_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range 2 * (1 + run) {
			n, src, err := peer.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("%s: %v after %v", fam.a1, err, srcs)
			}
			if n != len(ike) && n != len(esp) {
				t.Errorf("peer read %d bytes, want a datagram of %d or %d", n, len(ike), len(esp))
			}
			srcs[netip.AddrPortFrom(src.Addr().Unmap(), src.Port())]++
		}
		for _, a := range []netip.Addr{a1, a2} {
			if got := srcs[netip.AddrPortFrom(a, port)]; got != 1+run {
				t.Errorf("the peer got %d datagrams from %v, want %d (all: %v)", got, a, 1+run, srcs)
			}
		}
		if fam.a1 == "192.0.2.1" {
			// IPv4 only so far: one socket on the port.
			out := l.MustRun(name, "ss", "-Huan", "sport", "= :4500")
			if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 1 {
				t.Errorf("ss shows %d sockets on port %d, want 1:\n%s", n, port, out)
			}
		}
		e.Release(ep1)
		e.Release(ep2)
	}
	if len(e.wild) != 0 {
		t.Errorf("after the last release %d wildcard sockets are open", len(e.wild))
	}
}

// groCmsg is the UDP_GRO control message the kernel puts on a coalesced
// datagram of seg-byte segments.
func groCmsg(seg uint32) []byte {
	b := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(b[unix.CmsgLen(0):], seg)
	return b
}

// TestParseOOB: the segment size and the local address come out of the
// control messages whichever order they are in; without pktinfo the
// address is invalid.
func TestParseOOB(t *testing.T) {
	a4, a6 := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")
	p4 := unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: 3, Spec_dst: [4]byte{192, 0, 2, 99}, Addr: a4.As4()})
	p6 := unix.PktInfo6(&unix.Inet6Pktinfo{Addr: a6.As16(), Ifindex: 3})
	for _, c := range []struct {
		name string
		oob  []byte
		seg  int
		dst  netip.Addr
	}{
		{"pktinfo4", p4, 0, a4},
		{"gro-pktinfo4", append(groCmsg(1400), p4...), 1400, a4},
		{"pktinfo6-gro", append(slices.Clone(p6), groCmsg(1200)...), 1200, a6},
		{"gro", groCmsg(100), 100, netip.Addr{}},
		{"none", nil, 0, netip.Addr{}},
		{"truncated", p4[:len(p4)-8], 0, netip.Addr{}},
	} {
		seg, dst := parseOOB(c.oob)
		if seg != c.seg || dst != c.dst {
			t.Errorf("%s: segment %d, address %v; want %d, %v", c.name, seg, dst, c.seg, c.dst)
		}
	}
}

// FuzzParseOOB: parseOOB never panics, and a local address it reports is
// one that a pktinfo control message of the input holds.
func FuzzParseOOB(f *testing.F) {
	f.Add(unix.PktInfo4(&unix.Inet4Pktinfo{Addr: [4]byte{192, 0, 2, 1}}))
	f.Add(append(groCmsg(1400), unix.PktInfo6(&unix.Inet6Pktinfo{Addr: netip.MustParseAddr("2001:db8::1").As16()})...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, oob []byte) {
		_, dst := parseOOB(oob)
		if dst.IsValid() && !bytes.Contains(oob, dst.AsSlice()) {
			t.Fatalf("%x: address %v is not in the input", oob, dst)
		}
	})
}
