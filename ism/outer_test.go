package ism

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/operator"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
	"github.com/ismgw/ism/transform"
)

// The outer packets' path through the gateway, raw ESP on the AF_XDP ring
// and on raw sockets: ESP fragmented on the way and reassembled by the
// receiving kernel, and ICMP errors about the ESP a gateway sent.

// TestOuterFragments: a's tunnel MTU (1500, configured) is over the path
// MTU to b (a route with mtu 1300 in a's transport VR), so a 1428-byte
// ping without DF leaves a as ESP in two fragments: the kernel fragments
// it (the ring hands what does not fit the route to the raw socket), b's
// kernel reassembles it (the ring's XDP program leaves fragments to the
// kernel) and b decrypts it from its raw socket. Every ping is answered,
// b's kernel counts the reassemblies, and a's ring counts the packets it
// left to the socket path.
func TestOuterFragments(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"ring", "socket"} {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			s := manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel, raw: [2]string{raw, raw}, extraA: "  tunnel mtu 1500\n"})
			prepare := s.prepare
			s.prepare = func(x *lab) {
				prepare(x)
				x.lab.MustRun(x.a, "ip", "route", "replace", "192.0.2.2/32", "dev", "eth0", "mtu", "1300")
			}
			x := newLab(t, s)
			if err := x.ping(t, 2); err != nil { // the neighbours resolved
				t.Fatal(err)
			}
			var fallback uint64 // a's ring: sent through the raw sockets
			if raw == "ring" {
				// Until the ring has the next hop (the first packets
				// take the socket path, which makes the kernel resolve
				// it), small packets may leave by the raw socket too.
				ok := waitFor(10*time.Second, func() bool {
					_ = x.ping(t, 1)
					r := x.ga.eps.Rings()
					return len(r) == 1 && r[0].RingSent > 0
				})
				if !ok {
					t.Fatalf("a's ring sent nothing: %v", x.ga.eps.Rings())
				}
				fallback = x.ga.eps.Rings()[0].FallbackSent
			}
			reasm := kernelCounter(t, x, x.b, "IpReasmOKs")
			const pings = 3
			if out, err := x.lab.Run(x.a, "ping", "-c", fmt.Sprint(pings), "-i", "0.2", "-W", "5", "-M", "dont", "-s", "1400",
				"-I", "198.51.100.1", "203.0.113.1"); err != nil {
				t.Fatalf("ping -s 1400 through the tunnel: %v\n%s", err, out)
			}
			if n := kernelCounter(t, x, x.b, "IpReasmOKs") - reasm; n < pings {
				t.Errorf("b's kernel reassembled %d packets, want %d or more", n, pings)
			}
			if raw == "ring" {
				if r := x.ga.eps.Rings(); len(r) != 1 || r[0].FallbackSent-fallback < pings {
					t.Errorf("a's rings %v (%d through raw sockets before): want the %d big pings left to the socket path", r, fallback, pings)
				}
			}
		})
	}
}

// kernelCounter reads one of the kernel's SNMP counters in a namespace
// (nstat).
func kernelCounter(t *testing.T, x *lab, ns, name string) uint64 {
	t.Helper()
	out, err := x.lab.Run(ns, "nstat", "-asz", name)
	if err != nil {
		t.Fatalf("nstat: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("nstat: %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("nstat says nothing of %s:\n%s", name, out)
	return 0
}

// TestOuterICMP: an ICMP "fragmentation needed" (IPv4, next-hop MTU 1300)
// or "packet too big" (IPv6, MTU 1280) about the ESP a sent reaches a's
// kernel, which keeps the lower path MTU to b (the raw socket's error
// handler, which for IPv6 needs the socket to take errors, IPV6_RECVERR;
// the ring's XDP program leaves ICMP to the kernel); the gateway's path
// check reads it from the route and lowers the tunnel's MTU to what fits
// the path with the ESP overhead, as `tunnel mtu` says (the default
// follows the transport path), and the socket reads on.
func TestOuterICMP(t *testing.T) {
	t.Parallel()
	for _, v6 := range []bool{false, true} {
		for _, raw := range []string{"ring", "socket"} {
			name := map[bool]string{false: "ipv4", true: "ipv6"}[v6] + "-" + raw
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c := e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel, v6: v6, raw: [2]string{raw, "socket"}}
				x := newLab(t, manualSpec(t, c))
				if err := x.ping(t, 2); err != nil {
					t.Fatal(err)
				}
				tr, _ := transform.Lookup(c.transform)
				mtu := func() int {
					_, data, err := x.ga.Exec("show ipsec tunnel detail ipsec:t1")
					if err != nil {
						t.Fatal(err)
					}
					return data.([]operator.TunnelStatus)[0].MTU
				}
				if got, want := mtu(), offload.MaxInner(tr, ipsec.Tunnel, v6, false, 1500); got != want {
					t.Fatalf("a's tunnel MTU %d before the ICMP error, want %d", got, want)
				}
				path := 1300
				if v6 {
					path = 1280
				}
				ends := x.outer()
				sendTooBig(t, x.b, netip.MustParseAddr(ends[1]), netip.MustParseAddr(ends[0]), path)
				want := offload.MaxInner(tr, ipsec.Tunnel, v6, false, path)
				if !waitFor(10*time.Second, func() bool { return mtu() == want }) {
					out, _ := x.lab.Run(x.a, "ip", "route", "get", ends[1])

					t.Fatalf("a's tunnel MTU %d after the ICMP error, want %d (path MTU %d); a's route to b:\n%s", mtu(), want, path, out)
				}
				// The route into the tunnel carries the new MTU: a's kernel
				// tells senders, instead of the gateway dropping what no
				// longer fits. The gateway changes the route just after
				// the tunnel's MTU, which show has given already: wait.
				var route string
				if !waitFor(5*time.Second, func() bool {
					out, err := x.lab.Run(x.a, "ip", "route", "show", "203.0.113.0/24")
					route = fmt.Sprintf("(%v) %s", err, out)
					return err == nil && strings.Contains(out, fmt.Sprintf("mtu %d", want))
				}) {
					t.Errorf("a's route into the tunnel %s; want mtu %d", route, want)
				}
				if err := x.ping(t, 2); err != nil {
					t.Fatal(err)
				}
				// The socket's error queue held the ICMP error: it is
				// emptied, not reported as a failing read.
				if strings.Contains(x.log.String(), "transport socket read") {
					t.Errorf("a's log reports a failing socket read:\n%s", x.log.String())
				}
			})
		}
	}
}

// sendTooBig sends, from router (an address of namespace ns), an ICMP
// "fragmentation needed" (RFC 792, with the next-hop MTU of RFC 1191 §4)
// or ICMPv6 "packet too big" (RFC 4443 §3.2) to src about a 1400-byte ESP
// packet src sent to router, quoting its IP header and ESP header.
func sendTooBig(t *testing.T, ns string, router, src netip.Addr, mtu int) {
	t.Helper()
	esp := make([]byte, 1400-20)
	if src.Is6() {
		esp = esp[:1400-40]
	}
	binary.BigEndian.PutUint32(esp, 0x1001) // a's outbound SPI
	binary.BigEndian.PutUint32(esp[4:], 1)
	quoted := testpkt.IP(src, router, header.ProtoESP, esp)
	if src.Is6() {
		quoted = quoted[:40+8]
	} else {
		quoted = quoted[:20+8]
	}
	inNS(t, ns, func() error {
		var m icmp.Message
		network := "ip4:icmp"
		if src.Is6() {
			network = "ip6:ipv6-icmp"
			m = icmp.Message{Type: ipv6.ICMPTypePacketTooBig, Body: &icmp.PacketTooBig{MTU: mtu, Data: quoted}}
		} else {
			// Type 3 code 4: the unused half-word, then the next-hop MTU.
			body := append([]byte{0, 0, byte(mtu >> 8), byte(mtu)}, quoted...)
			m = icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 4, Body: &icmp.RawBody{Data: body}}
		}
		b, err := m.Marshal(nil) // the kernel sums ICMPv6 itself
		if err != nil {
			return err
		}
		c, err := icmp.ListenPacket(network, router.String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WriteTo(b, &net.IPAddr{IP: src.AsSlice()})
		return err
	})
}
