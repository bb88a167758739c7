package ring

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

type family struct {
	name     string
	src, dst netip.Addr
	v6       bool
}

var families = []family{{"ipv4", a4, b4, false}, {"ipv6", a6, b6, true}}

// TestRingSend: ESP packets sent through a's ring arrive intact at a raw
// socket in b, IPv4 and IPv6, all of them through the ring; a packet over
// the MTU and one to an unresolved neighbour take the socket path.
func TestRingSend(t *testing.T) {
	l := newPairLab(t)
	c := openConn(t, l.a)
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			rx := openRaw(t, l.b, f.v6, protoESP)
			before := c.Stats()
			var pkts [][]byte
			for i := range 300 {
				pkts = append(pkts, espPacket(f.src, f.dst, 1420, uint32(i+1)))
			}
			if n, err := c.Send(pkts); n != len(pkts) || err != nil {
				t.Fatalf("sent %d: %v", n, err)
			}
			got := rx.read(len(pkts))
			if len(got) != len(pkts) {
				t.Fatalf("%d of %d packets arrived", len(got), len(pkts))
			}
			for i, g := range got {
				if !bytes.Equal(payloadOf(g, f.v6), pkts[i][ipLen(f.v6):]) {
					t.Fatalf("packet %d differs", i)
				}
				if !f.v6 && !bytes.Equal(g, pkts[i]) {
					t.Fatalf("packet %d: header differs:\n% x\n% x", i, g[:20], pkts[i][:20])
				}
			}
			st := c.Stats()
			if st.RingSent-before.RingSent != uint64(len(pkts)) || st.FallbackSent != before.FallbackSent {
				t.Fatalf("stats %+v (before %+v): not all through the ring", st, before)
			}
			// Over the MTU: the socket path, where the kernel refuses
			// it as it does today (a raw socket with the header
			// included never fragments: EMSGSIZE). To nobody at all:
			// the socket path, which makes the kernel resolve.
			big := espPacket(f.src, f.dst, 3000, 9999)
			if n, err := c.Send([][]byte{big}); n != 0 || !errors.Is(err, unix.EMSGSIZE) {
				t.Fatalf("oversized: sent %d: %v", n, err)
			}
			if n, err := c.Send([][]byte{espPacket(f.src, f.dst.Next(), 200, 1)}); n != 1 || err != nil {
				t.Fatalf("unresolved: sent %d: %v", n, err)
			}
			if g := rx.read(1); len(g) != 0 {
				t.Fatalf("%d packets arrived that should not have", len(g))
			}
			if st2 := c.Stats(); st2.FallbackSent-st.FallbackSent != 1 || st2.RingSent != st.RingSent {
				t.Fatalf("stats %+v after %+v: want 1 more through the socket path", st2, st)
			}
			// The interface's MTU lowered: what no longer fits takes
			// the socket path once the ring reads the MTU again.
			l.MustRun(l.a, "ip", "link", "set", "eth0", "mtu", "1400")
			c.hops.mu.Lock()
			c.hops.mtuAt = time.Time{} // as if neighTTL had passed
			c.hops.mu.Unlock()
			st = c.Stats()
			if n, err := c.Send([][]byte{espPacket(f.src, f.dst, 1420, 10000)}); n != 0 || !errors.Is(err, unix.EMSGSIZE) {
				t.Fatalf("over the lowered MTU: sent %d: %v", n, err)
			}
			if st2 := c.Stats(); st2.RingSent != st.RingSent {
				t.Fatalf("over the lowered MTU: sent through the ring (%+v after %+v)", st2, st)
			}
			l.MustRun(l.a, "ip", "link", "set", "eth0", "mtu", "1500")
			c.hops.mu.Lock()
			c.hops.mtuAt = time.Time{}
			c.hops.mu.Unlock()
			// A route MTU under the interface's (as a path MTU from an
			// ICMP error is): what does not fit the path takes the
			// socket path, where the kernel fragments IPv4 without DF.
			host := netip.PrefixFrom(f.dst, f.dst.BitLen()).String()
			l.MustRun(l.a, "ip", "route", "replace", host, "dev", "eth0", "mtu", "1300")
			forget := func() {
				c.hops.mu.Lock()
				clear(c.hops.cache) // as if neighTTL had passed
				c.hops.mu.Unlock()
			}
			forget()
			st = c.Stats()
			over := espPacket(f.src, f.dst, 1420, 10001)
			if !f.v6 {
				over[6] &^= 0x40 // DF clear: the kernel may fragment it
			}
			n, err := c.Send([][]byte{over, espPacket(f.src, f.dst, 1200, 10002)})
			if st2 := c.Stats(); st2.RingSent-st.RingSent != 1 || st2.FallbackSent-st.FallbackSent != uint64(n-1) {
				t.Fatalf("over the route's MTU: %d sent (%v), stats %+v after %+v; want the 1200-byte one through the ring, the other not", n, err, st2, st)
			}
			// IPv4: fragmented by the kernel and reassembled in b. IPv6:
			// refused as a raw socket refuses it (a raw IPv6 socket with
			// the header included never fragments).
			want := 2
			if f.v6 {
				want = 1
				if !errors.Is(err, unix.EMSGSIZE) {
					t.Fatalf("over the route's MTU: %v, want EMSGSIZE", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if g := rx.read(want); n != want || len(g) != want {
				t.Fatalf("over the route's MTU: sent %d, %d arrived; want %d", n, len(g), want)
			}
			l.MustRun(l.a, "ip", "route", "del", host, "dev", "eth0")
			forget()
			// Not whole IP packets: refused, the rest sent.
			short := espPacket(f.src, f.dst, 100, 1)
			if n, err := c.Send([][]byte{{0x45}, short[:60], espPacket(f.src, f.dst, 100, 2)}); n != 1 || err == nil {
				t.Fatalf("malformed: sent %d: %v", n, err)
			}
			if g := rx.read(2); len(g) != 1 {
				t.Fatalf("%d packets arrived of the one whole one", len(g))
			}
		})
	}
}

func ipLen(v6 bool) int {
	if v6 {
		return 40
	}
	return 20
}

// TestRingReceive: ESP sent from b's raw socket arrives through a's ring,
// IPv4 and IPv6, and the kernel's path in a sees none of it; a fragmented
// ESP packet, ICMP echo and ICMP errors stay on the kernel's path; once the
// Conn is closed the kernel gets ESP again and a blocked receive returns.
func TestRingReceive(t *testing.T) {
	l := newPairLab(t)
	c := openConn(t, l.a)
	tx := openSockets(t, l.b)
	recv := c.ReceiveFuncs()
	if len(recv) != 1 {
		t.Fatalf("%d receive functions on a one-queue veth", len(recv))
	}
	type result struct {
		pkts [][]byte
		err  error
	}
	receive := func(want int) [][]byte {
		done := make(chan result, 1)
		go func() {
			var r result
			bufs := make([][]byte, 128)
			for i := range bufs {
				bufs[i] = make([]byte, 9000)
			}
			sizes := make([]int, len(bufs))
			for len(r.pkts) < want {
				n, err := recv[0](bufs, sizes)
				if err != nil {
					r.err = err
					break
				}
				for i := range n {
					r.pkts = append(r.pkts, bytes.Clone(bufs[i][:sizes[i]]))
				}
			}
			done <- r
		}()
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatal(r.err)
			}
			return r.pkts
		case <-time.After(5 * time.Second):
			t.Fatalf("fewer than %d packets through the ring", want)
		}
		return nil
	}
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			kernel := openRaw(t, l.a, f.v6, protoESP)
			var pkts [][]byte
			for i := range 500 {
				pkts = append(pkts, espPacket(f.dst, f.src, 1420, uint32(i+1)))
			}
			if n, err := tx.Send(pkts); n != len(pkts) || err != nil {
				t.Fatalf("sent %d: %v", n, err)
			}
			got := receive(len(pkts))
			for i, g := range got {
				if !bytes.Equal(g[ipLen(f.v6):], pkts[i][ipLen(f.v6):]) {
					t.Fatalf("packet %d differs", i)
				}
			}
			if k := kernel.read(1); len(k) != 0 {
				t.Fatalf("the kernel's path got %d ESP packets the ring took", len(k))
			}
			if !f.v6 {
				// A fragmented ESP packet goes to the kernel, which
				// reassembles it for the raw socket.
				// (A raw socket without the header included
				// fragments what exceeds the MTU.)
				big := espPacket(f.dst, f.src, 3000, 7)
				frag := openRaw(t, l.b, false, protoESP)
				if err := unix.Sendto(frag.fd, big[20:], 0, &unix.SockaddrInet4{Addr: f.src.As4()}); err != nil {
					t.Fatal(err)
				}
				if k := kernel.read(1); len(k) != 1 || !bytes.Equal(payloadOf(k[0], false), big[20:]) {
					t.Fatalf("the fragmented packet did not reach the kernel's path whole (%d)", len(k))
				}
			}
			ping := "ping"
			if f.v6 {
				ping = "ping6"
			}
			l.MustRun(l.b, ping, "-c", "1", "-W", "2", f.src.String())
			// An ICMP error (port unreachable from b) reaches a's
			// UDP socket through the kernel.
			in(t, l.a, func() error {
				u, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(f.dst, 9)))
				if err != nil {
					return err
				}
				defer u.Close()
				u.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := u.Write([]byte("x")); err != nil {
					return err
				}
				if _, err := u.Read(make([]byte, 10)); !errors.Is(err, unix.ECONNREFUSED) {
					t.Errorf("the ICMP port unreachable did not reach the socket: %v", err)
				}
				return nil
			})
		})
	}
	st := c.Stats()
	if st.Received != 1000 || st.RxDropped != 0 {
		t.Errorf("stats %+v", st)
	}
	// Closed: the program is gone, the kernel takes ESP again, and a
	// blocked receive returns.
	blocked := make(chan error, 1)
	go func() {
		_, err := recv[0](make([][]byte, 1), make([]int, 1))
		blocked <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked receive: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a blocked receive did not return on Close")
	}
	kernel := openRaw(t, l.a, false, protoESP)
	if _, err := tx.Send([][]byte{espPacket(b4, a4, 100, 1)}); err != nil {
		t.Fatal(err)
	}
	if k := kernel.read(1); len(k) != 1 {
		t.Fatal("after Close the kernel does not get ESP")
	}
	if _, err := c.Send([][]byte{espPacket(a4, b4, 100, 1)}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

// TestProbe: the probe says why a ring cannot run: no such interface,
// loopback, an interface that is down, an MTU over the frames, and an
// interface whose XDP hook another program holds; it accepts a veth.
func TestProbe(t *testing.T) {
	l := newPairLab(t)
	l.MustRun(l.a, "ip", "link", "add", "down0", "type", "veth", "peer", "name", "down1")
	l.MustRun(l.a, "ip", "link", "add", "jumbo0", "type", "veth", "peer", "name", "jumbo1")
	l.MustRun(l.a, "ip", "link", "set", "jumbo0", "mtu", "9000", "up")
	l.MustRun(l.a, "ip", "link", "add", "busy0", "type", "veth", "peer", "name", "busy1")
	l.MustRun(l.a, "ip", "link", "set", "busy0", "up")
	l.MustRun(l.a, "ip", "link", "set", "busy1", "up")
	cases := []struct {
		ifname string
		want   error
	}{
		{"nosuch0", ErrNoInterface},
		{"lo", ErrNotEthernet},
		{"down0", ErrDown},
		{"jumbo0", ErrMTU},
		{"busy0", ErrXDPAttach},
		{"eth0", nil},
	}
	in(t, l.a, func() error {
		// Another program on busy0's XDP hook.
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "BSD",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()}})
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("busy0")
		if err != nil {
			return err
		}
		lk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Index})
		if err != nil {
			return err
		}
		t.Cleanup(func() { lk.Close(); prog.Close() })
		for _, c := range cases {
			err := Probe(c.ifname)
			var pe *ProbeError
			switch {
			case c.want == nil && err != nil:
				t.Errorf("%s: %v", c.ifname, err)
			case c.want != nil && (!errors.Is(err, c.want) || !errors.As(err, &pe) || pe.Interface != c.ifname):
				t.Errorf("%s: %v, want %v", c.ifname, err, c.want)
			case err != nil:
				t.Logf("%s: %v", c.ifname, err)
			}
		}
		return nil
	})
	// The refused attach left nothing behind: eth0 still works after its
	// probe, and busy0 keeps its own program.
	if out := l.MustRun(l.a, "ip", "link", "show", "busy0"); !bytes.Contains([]byte(out), []byte("xdp")) {
		t.Errorf("busy0 lost its program:\n%s", out)
	}
	if out := l.MustRun(l.a, "ip", "link", "show", "eth0"); bytes.Contains([]byte(out), []byte("xdp")) {
		t.Errorf("the probe left its program on eth0:\n%s", out)
	}
	_ = fmt.Sprint()
}
