package ring

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/netns"
)

var (
	a4, b4 = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	a6, b6 = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
)

// pairLab is two namespaces joined by a veth pair, eth0 on both sides,
// with IPv4 and IPv6 addresses, and each side's neighbour entry for the
// other resolved.
type pairLab struct {
	*netlab.Lab
	a, b string
}

func newPairLab(t testing.TB) *pairLab {
	t.Helper()
	l := netlab.New(t)
	p := &pairLab{Lab: l, a: l.NS("a"), b: l.NS("b")}
	l.Link(p.a, "eth0", netip.PrefixFrom(a4, 24), p.b, "eth0", netip.PrefixFrom(b4, 24))
	l.MustRun(p.a, "ip", "addr", "add", netip.PrefixFrom(a6, 64).String(), "dev", "eth0", "nodad")
	l.MustRun(p.b, "ip", "addr", "add", netip.PrefixFrom(b6, 64).String(), "dev", "eth0", "nodad")
	l.MustRun(p.a, "ping", "-c", "1", "-W", "2", b4.String())
	l.MustRun(p.a, "ping", "-6", "-c", "1", "-W", "2", b6.String())
	return p
}

// in runs f in namespace ns and fails the test on its error.
func in(t testing.TB, ns string, f func() error) {
	t.Helper()
	if err := netns.Do(ns, f); err != nil {
		t.Fatal(err)
	}
}

// openConn opens a Conn on eth0 of ns, closed when the test ends.
func openConn(t testing.TB, ns string) *Conn {
	t.Helper()
	var c *Conn
	in(t, ns, func() (err error) { c, err = Open(Config{Interface: "eth0"}); return err })
	t.Cleanup(func() { c.Close() })
	return c
}

// rawSock is a raw socket of one family and IP protocol in a namespace,
// for tests to read what the kernel delivers (IPv4: with the IP header;
// IPv6: without).
type rawSock struct{ fd int }

func openRaw(t testing.TB, ns string, v6 bool, proto int) *rawSock {
	t.Helper()
	s := &rawSock{fd: -1}
	fam := unix.AF_INET
	if v6 {
		fam = unix.AF_INET6
	}
	in(t, ns, func() (err error) {
		s.fd, err = unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		return err
	})
	_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	tv := unix.NsecToTimeval(int64(300 * time.Millisecond))
	_ = unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

// read returns the packets that arrive until the socket has been quiet for
// its timeout, or max of them.
func (s *rawSock) read(max int) [][]byte {
	var out [][]byte
	buf := make([]byte, 65536)
	for len(out) < max {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			break
		}
		out = append(out, bytes.Clone(buf[:n]))
	}
	return out
}

// openSockets opens the socket path in ns, closed when the test ends.
func openSockets(t testing.TB, ns string) *Sockets {
	t.Helper()
	var s *Sockets
	in(t, ns, func() (err error) { s, err = OpenSockets(); return err })
	t.Cleanup(func() { s.Close() })
	return s
}

// espPacket returns an IP packet carrying a fake ESP packet of n bytes in
// all: SPI and sequence number, then a pattern.
func espPacket(src, dst netip.Addr, n int, seq uint32) []byte {
	hdr := 20
	if src.Is6() {
		hdr = 40
	}
	payload := make([]byte, n-hdr)
	binary.BigEndian.PutUint32(payload, 0x1000)
	binary.BigEndian.PutUint32(payload[4:], seq)
	for i := 8; i < len(payload); i++ {
		payload[i] = byte(seq) + byte(i)
	}
	return testpkt.IP(src, dst, protoESP, payload)
}

// payloadOf returns what follows the IP header of a packet a raw socket
// read: IPv4 sockets include the header, IPv6 ones do not.
func payloadOf(got []byte, v6 bool) []byte {
	if v6 {
		return got
	}
	return got[int(got[0]&0xf)*4:]
}
