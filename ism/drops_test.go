package ism

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/lookaside"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// Drops: what a gateway refuses is dropped under its reason and counted,
// and the gateway keeps working: a ping through the tunnel succeeds
// afterwards.

// waitFor polls cond until it holds or d passes, and reports whether it
// held. Counters are updated by the data path's goroutines after the
// packet has left the sender, so tests wait for them.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// drops are a tunnel's nonzero drop counters by reason name, per
// direction: tx counts what the tunnel refused to send, rx what it refused
// to deliver.
type drops struct{ tx, rx map[string]uint64 }

func (d drops) String() string { return fmt.Sprintf("tx %v, rx %v", d.tx, d.rx) }

// dropped returns the counts of one reason.
func dropped(r offload.DropReason, n uint64) map[string]uint64 {
	return map[string]uint64{r.String(): n}
}

func tunnelDrops(g *Gateway, name string) drops {
	t := g.tunnels[name]
	tx, rx := t.d.TX.Snapshot(), t.d.RX.Snapshot()
	return drops{tx.DropMap(), rx.DropMap()}
}

// waitDrops waits until the tunnel t1's drop counters are exactly want.
func waitDrops(t *testing.T, g *Gateway, side string, want drops) {
	t.Helper()
	equal := func() bool {
		d := tunnelDrops(g, "t1")
		return maps.Equal(d.tx, want.tx) && maps.Equal(d.rx, want.rx)
	}
	if want.tx == nil {
		want.tx = map[string]uint64{}
	}
	if want.rx == nil {
		want.rx = map[string]uint64{}
	}
	if !waitFor(5*time.Second, equal) {
		t.Fatalf("%s's tunnel drops: %v, want %v", side, tunnelDrops(g, "t1"), want)
	}
}

// pingLost pings dst from a's inner address and expects no answer.
func (x *lab) pingLost(t *testing.T, dst string, n int) {
	t.Helper()
	ns, src := x.from()
	out, err := x.lab.Run(ns, "ping", "-c", fmt.Sprint(n), "-i", "0.2", "-W", "1", "-I", src, dst)
	if err == nil {
		t.Fatalf("ping %s → %s was answered; want it dropped\n%s", src, dst, out)
	}
}

// TestDropSelector: a's remote selector leaves out 203.0.113.3 and b's
// local selector leaves out 203.0.113.2, though a routes both into the
// tunnel. a drops what it would send to 203.0.113.3 before encapsulating
// it; b decrypts what a sends to 203.0.113.2 and drops it (RFC 4301 §5.2:
// inbound packets are checked against the SA's selectors). Both count
// selector-mismatch; 203.0.113.1 still goes through.
func TestDropSelector(t *testing.T) {
	t.Parallel()
	x := newLab(t, manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel,
		extraA: "  tunnel remote-selector range 203.0.113.1 203.0.113.2\n",
		extraB: "  tunnel local-selector 203.0.113.1\n"}))
	aout, _ := sas(x.ga, "t1")
	_, bin := sas(x.gb, "t1")
	sel := dropped(offload.DropSelector, 2)

	x.pingLost(t, "203.0.113.3", 2)
	waitDrops(t, x.ga, "a", drops{tx: sel})
	if n := aout.Packets(); n != 0 {
		t.Errorf("a sent %d packets outside its selectors", n)
	}
	waitDrops(t, x.gb, "b", drops{})

	x.pingLost(t, "203.0.113.2", 2)
	waitDrops(t, x.gb, "b", drops{rx: sel})
	if a, b := aout.Packets(), bin.Packets(); a != 2 || b != 2 {
		t.Errorf("a sent %d packets inside its selectors and b decrypted %d; want 2 and 2", a, b)
	}

	if err := x.ping(t, 3); err != nil {
		t.Fatalf("after selector drops: %v", err)
	}
	waitDrops(t, x.ga, "a", drops{tx: sel})
	waitDrops(t, x.gb, "b", drops{rx: sel})
}

// TestDropNoSA: an ESP packet for an SPI b has no SA for, sent from a
// (raw, and in UDP to port 4500), is dropped by b and counted no-sa in the
// engine's global counters (the "Engine" line of show ipsec statistics);
// no tunnel is charged, and the tunnel still works.
func TestDropNoSA(t *testing.T) {
	t.Parallel()
	for _, udp := range []bool{false, true} {
		c := e2eCase{transform: "esp-3des-hmac-sha", mode: ipsec.Tunnel, udp: udp}
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			x := newLab(t, manualSpec(t, c))
			// SPI, sequence number 1 (RFC 4303 §2), then bytes that
			// would be the IV, payload and ICV.
			pkt := make([]byte, 8+64)
			binary.BigEndian.PutUint32(pkt, 0x0bad0001)
			binary.BigEndian.PutUint32(pkt[4:], 1)
			rand.Read(pkt[8:])
			inNS(t, x.a, func() error {
				var c net.Conn
				var err error
				if udp {
					c, err = net.Dial("udp4", "192.0.2.2:4500")
				} else {
					c, err = net.Dial("ip4:esp", "192.0.2.2")
				}
				if err != nil {
					return err
				}
				defer c.Close()
				_, err = c.Write(pkt)
				return err
			})
			if !waitFor(5*time.Second, func() bool { return x.gb.Statistics().Engine.Drops[offload.DropNoSA.String()] == 1 }) {
				t.Fatalf("b's engine drops: %v, want no-sa 1", x.gb.Statistics().Engine.Drops)
			}
			if st := x.gb.Statistics(); st.Engine.Drops[offload.DropNoSA.String()] != 1 {
				t.Errorf("b's statistics: engine drops %v, want no-sa 1", st.Engine.Drops)
			}
			if err := x.ping(t, 3); err != nil {
				t.Fatalf("after a packet without SA: %v", err)
			}
			waitDrops(t, x.gb, "b", drops{})
			if v := x.gb.Statistics().Engine.Drops; len(v) != 1 {
				t.Errorf("b's engine drops: %v, want only no-sa 1", v)
			}
		})
	}
}

// rawIPsec opens a raw socket for ESP or AH with the IP header included
// (IP_HDRINCL for sending), bound to addr in namespace ns.
func rawIPsec(t *testing.T, ns string, proto transform.Protocol, addr string) *ipv4.RawConn {
	t.Helper()
	var rc *ipv4.RawConn
	inNS(t, ns, func() error {
		c, err := net.ListenPacket(fmt.Sprintf("ip4:%d", proto), addr)
		if err != nil {
			return err
		}
		if rc, err = ipv4.NewRawConn(c); err != nil {
			c.Close()
		}
		return err
	})
	t.Cleanup(func() { rc.Close() })
	return rc
}

// ipsecSeqOffset is where the sequence number sits in an ESP header (RFC
// 4303 §2) and an AH header (RFC 4302 §2).
func ipsecSeqOffset(p transform.Protocol) int {
	if p == transform.AH {
		return 8
	}
	return 4
}

// TestDropReplayAndTamper: a packet a sent, captured from a raw socket in
// b and sent again from a with its IP header, is a replay for b; the same
// packet with a payload byte flipped and its sequence number far ahead of
// the window (so that the replay pre-check lets it through) fails the ICV.
// Each is counted on b's inbound SA and tunnel, and the tunnel still works:
// had the forged sequence number moved the window, the next pings would
// fall behind it.
func TestDropReplayAndTamper(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"esp-aes128-gcm16", "esp-3des-hmac-sha", "ah-hmac-sha"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// b on raw sockets, so that its tap sees what a sends.
			x := newLab(t, manualSpec(t, e2eCase{transform: name, mode: ipsec.Tunnel, raw: [2]string{"", "socket"}}))
			tr, _ := transform.Lookup(name)
			tap := rawIPsec(t, x.b, tr.Protocol, "192.0.2.2")
			if err := x.ping(t, wirePings); err != nil {
				t.Fatal(err)
			}
			h, p := firstPacket(t, tap, tr.Protocol)

			inj := rawIPsec(t, x.a, tr.Protocol, "192.0.2.1")
			if err := inj.WriteTo(h, p, nil); err != nil {
				t.Fatalf("inject: %v", err)
			}
			_, bin := sas(x.gb, "t1")
			replay := dropped(offload.DropReplay, 1)
			waitDrops(t, x.gb, "b", drops{rx: replay})
			if got := bin.Drops(); !maps.Equal(got, replay) {
				t.Errorf("b's inbound SA drops: %v, want %v", got, replay)
			}

			q := append([]byte(nil), p...)
			binary.BigEndian.PutUint32(q[ipsecSeqOffset(tr.Protocol):], wirePings+5000)
			if tr.Protocol == transform.AH {
				q[len(q)-1] ^= 0x01 // the inner packet's last byte
			} else {
				q[8+tr.IVLen()] ^= 0x01 // the first byte of ciphertext
			}
			if err := inj.WriteTo(h, q, nil); err != nil {
				t.Fatalf("inject: %v", err)
			}
			both := map[string]uint64{offload.DropReplay.String(): 1, offload.DropICV.String(): 1}
			waitDrops(t, x.gb, "b", drops{rx: both})
			if got := bin.Drops(); !maps.Equal(got, both) {
				t.Errorf("b's inbound SA drops: %v, want %v", got, both)
			}

			if err := x.ping(t, wirePings); err != nil {
				t.Fatalf("after a replay and a forgery: %v", err)
			}
			// The SA counts a packet once it is delivered: the reply
			// can overtake the count of the last request. b took what
			// a's SA sent (2*wirePings, more if an answer was lost and
			// ping asked again), and neither injected packet.
			aout, _ := sas(x.ga, "t1")
			waitFor(3*time.Second, func() bool { return bin.Packets() >= aout.Packets() })
			if n, want := bin.Packets(), aout.Packets(); n != want || want < 2*wirePings {
				t.Errorf("b's inbound SA took %d packets, a's outbound SA sent %d; want the same, %d or more", n, want, 2*wirePings)
			}
			waitDrops(t, x.gb, "b", drops{rx: both})
		})
	}
}

// firstPacket reads from the tap until the packet with sequence number 1
// of the a→b SA (SPI 0x1001) and returns its IP header and payload.
func firstPacket(t *testing.T, tap *ipv4.RawConn, proto transform.Protocol) (*ipv4.Header, []byte) {
	t.Helper()
	spiOff := 0
	if proto == transform.AH {
		spiOff = 4
	}
	buf := make([]byte, 2048)
	tap.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		h, p, _, err := tap.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no packet with SPI 0x1001 and sequence number 1 reached b: %v", err)
		}
		so := ipsecSeqOffset(proto)
		if len(p) >= so+4 && binary.BigEndian.Uint32(p[spiOff:]) == 0x1001 && binary.BigEndian.Uint32(p[so:]) == 1 {
			return h, append([]byte(nil), p...)
		}
	}
}

// TestDropTunnelDown: a manual tunnel whose destination has no route in the
// transport VR is down and says why; what reaches its secure interface is
// dropped tunnel-down. Once a route to the destination appears, the next
// path check (every pathCheckInterval) brings the tunnel up and a ping goes
// through.
func TestDropTunnelDown(t *testing.T) {
	t.Parallel()
	// Host addresses only: b has a route to a, a none to b yet.
	s := manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel})
	s.hostLink = true
	prepare := s.prepare
	s.prepare = func(x *lab) {
		prepare(x)
		x.lab.MustRun(x.b, "ip", "route", "add", "192.0.2.1/32", "dev", "eth0")
	}
	x := newLab(t, s)
	l := x.lab
	ta := x.ga.tunnels["t1"]

	if ta.Up() {
		t.Fatal("a's tunnel is up without a route to its destination")
	}
	if r := ta.Reason(); !strings.Contains(r, "192.0.2.2 is not routable") {
		t.Errorf("a's tunnel is down because %q; want it to say 192.0.2.2 is not routable", r)
	}
	if !x.gb.tunnels["t1"].Up() {
		t.Fatalf("b's tunnel is down: %s", x.gb.tunnels["t1"].Reason())
	}
	// A down tunnel's routes are withdrawn, so send to the secure
	// interface's device directly (SO_BINDTODEVICE).
	if out, err := l.Run(x.a, "ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", lookaside.TUNName, "203.0.113.1"); err == nil {
		t.Fatalf("ping through a down tunnel was answered\n%s", out)
	}
	waitDrops(t, x.ga, "a", drops{tx: dropped(offload.DropTunnelDown, 2)})

	l.MustRun(x.a, "ip", "route", "add", "192.0.2.2/32", "dev", "eth0")
	start := time.Now()
	if !waitFor(x.ga.timers.PathCheck+10*time.Second, ta.Up) {
		t.Fatalf("a's tunnel still down %v after the route was added: %s", time.Since(start).Round(time.Millisecond), ta.Reason())
	}
	t.Logf("up %v after the route was added", time.Since(start).Round(time.Millisecond))
	// The path check marks the tunnel up, then installs its routes: the
	// first pings may find none yet (no-route) on a loaded machine.
	x.pingUntil(t, x.a, "198.51.100.1", "203.0.113.1", 3)
}
