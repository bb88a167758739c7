package ism

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/operator"
	"github.com/ismgw/ism/offload"
)

// The data plane through real namespaces: one SA's crypto on several
// lanes with its order kept (dataplane workers), and raw ESP through the
// AF_XDP ring (dataplane raw-transport), judged by tcpdump and tshark on
// the peer's side of the veth and by the gateway's own counters.

// wantRing checks that a's raw ESP went through an AF_XDP ring on its
// eth0: show says so, and the ring sent out packets or more. With bulk
// (a transfer, the next hop resolved by then), some went through the ring
// itself (the ones to a next hop the kernel has not resolved yet leave by
// the raw socket, which makes the kernel resolve it) and some came in by
// it (not all need to: what the veth hands the kernel without running its
// XDP program reaches the raw socket, which the gateway reads too).
func (x *lab) wantRing(t *testing.T, out uint64, bulk bool) {
	t.Helper()
	text, data, err := x.ga.Exec("show ipsec tunnel detail ipsec:t1")
	if err != nil {
		t.Fatal(err)
	}
	if ts := data.([]operator.TunnelStatus); !strings.HasPrefix(ts[0].Transport, "af_xdp ring on eth0") ||
		!strings.Contains(text, "Transport: af_xdp ring on eth0") {
		t.Errorf("a's tunnel is not on the af_xdp ring on eth0:\n%s", text)
	}
	rings := x.ga.eps.Rings()
	if len(rings) != 1 {
		t.Fatalf("a runs %d rings, want 1: %v", len(rings), rings)
	}
	// The ring counts a burst once the kernel has taken it, which can be
	// after the echo's answer is back on a busy machine.
	waitFor(5*time.Second, func() bool {
		r := x.ga.eps.Rings()[0]
		return r.RingSent+r.FallbackSent >= out
	})
	r := x.ga.eps.Rings()[0]
	if r.RingSent+r.FallbackSent < out || bulk && (r.RingSent == 0 || r.Received == 0) {
		t.Errorf("a's ring: %v; want %d packets or more out (and some through the ring and in by it: %v)", r, out, bulk)
	}
	t.Logf("a's ring: %v", r)
	text, _, err = x.ga.Exec("show ipsec statistics")
	if err != nil || !strings.Contains(text, "Ring: af_xdp ring on eth0 in VR tr") {
		t.Errorf("show ipsec statistics says nothing of the ring (%v):\n%s", err, text)
	}
}

// espSequences returns the ESP sequence numbers of spi in a capture, in
// capture order, as tshark reads them.
func espSequences(t *testing.T, pcap string, spi uint32) []uint32 {
	t.Helper()
	cmd := exec.CommandContext(judgeContext(t), needTool(t, "tshark", "tshark"), "-n", "-r", pcap,
		"-Y", fmt.Sprintf("esp.spi == 0x%08x", spi), "-T", "fields", "-e", "esp.sequence")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var seqs []uint32
	for _, f := range strings.Fields(string(out)) {
		v, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			t.Fatalf("tshark: sequence number %q: %v", f, err)
		}
		seqs = append(seqs, uint32(v))
	}
	return seqs
}

// TestDataplaneWorkers: with `dataplane workers 2`, a TCP transfer through
// a raw ESP tunnel arrives intact, both gateways' pipelines ran bursts on
// two lanes (whether their crypto overlapped depends on the machine's
// load: it is logged), and on the wire (tcpdump on b's eth0,
// tshark reading it) the ESP sequence numbers a sent rise in the order the
// packets left: the order was restored after the parallel crypto. a's raw
// ESP goes through its AF_XDP ring. A reload to one worker changes the
// running pipelines.
func TestDataplaneWorkers(t *testing.T) {
	t.Parallel()
	c := e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel, raw: [2]string{"ring", "socket"}}
	s := manualSpec(t, c)
	for _, f := range []*func(*lab) string{&s.a, &s.b} {
		conf := *f
		*f = func(x *lab) string { return "dataplane workers 2\n" + conf(x) }
	}
	x := newLab(t, s)
	x.pingUntil(t, x.a, "198.51.100.1", "203.0.113.1", 2) // the neighbours resolved
	capt := startCapture(t, x.lab, x.b, "eth0")
	x.transfer(t, 4<<20)
	seqs := espSequences(t, capt.stop(t, 1), 0x1001)
	if len(seqs) < 500 { // of about 3000: tcpdump misses some on a busy machine
		t.Fatalf("tshark saw %d ESP packets from a, want a 4 MiB transfer's", len(seqs))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("ESP from a out of order on the wire: sequence number %d after %d (packet %d of %d)", seqs[i], seqs[i-1], i, len(seqs))
		}
	}
	for _, g := range []struct {
		name string
		g    *Gateway
	}{{"a", x.ga}, {"b", x.gb}} {
		st := g.g.Statistics()
		if st.Workers != 2 || st.Pipelines.Devices != 1 || st.Pipelines.Sockets < 1 {
			t.Errorf("%s: %d workers, pipelines %+v; want 2 workers, one device pipeline and a socket one", g.name, st.Workers, st.Pipelines)
		}
		if st.Pipelines.Lanes != 2 {
			t.Errorf("%s: at most %d lanes ran one pipeline's %d bursts, want 2", g.name, st.Pipelines.Lanes, st.Pipelines.Bursts)
		}
		t.Logf("%s: %d bursts, %d overlapping another's crypto", g.name, st.Pipelines.Bursts, st.Pipelines.Overlapped)
	}
	x.wantRing(t, uint64(len(seqs)), true)

	cfg, err := config.Parse("test.conf", strings.NewReader(strings.Replace(x.textA, "dataplane workers 2", "dataplane workers 1", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.ga.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	text, _, _ := x.ga.Exec("show ipsec statistics")
	if !strings.Contains(text, "Dataplane workers: 1 per pipeline; 1 secure-interface device") {
		t.Errorf("after the reload to one worker:\n%s", text)
	}
	x.transfer(t, 1<<20)
}

// TestRawESPv6: raw ESP with IPv6 outer headers through the gateway, a
// sending and taking it through its AF_XDP ring, then through raw
// sockets: tshark on b's side decrypts every packet of a ping both ways.
func TestRawESPv6(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"ring", "socket"} {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			c := e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel, v6: true, raw: [2]string{raw, "socket"}}
			x := newLab(t, manualSpec(t, c))
			pcap := pingCaptured(t, x)
			sas := x.wireSAs(t)
			_, from := x.from()
			_, to := x.to()
			checkPings(t, tsharkESP(t, pcap, sas), sas, from, to, false)
			if raw == "ring" {
				x.wantRing(t, wirePings, false)
			}
		})
	}
}

// TestRingUnavailable: where the ring cannot run (a's eth0 already runs
// another XDP program, which the ring never replaces), `dataplane
// raw-transport ring` puts the tunnel on raw sockets, logs a warning,
// counts ring-unavailable and says why in show; traffic flows. A reload to
// auto rebuilds the tunnel, again on raw sockets, without counting it (no
// ping then: a's rebuilt manual SA starts again at sequence number 1,
// which b's window has seen).
func TestRingUnavailable(t *testing.T) {
	t.Parallel()
	s := manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel, raw: [2]string{"ring", "socket"}})
	prepare := s.prepare
	s.prepare = func(x *lab) {
		prepare(x)
		inNS(t, x.a, func() error {
			prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "BSD",
				Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()}})
			if err != nil {
				return err
			}
			ifi, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			lk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Index})
			if err != nil {
				return err
			}
			t.Cleanup(func() { lk.Close(); prog.Close() })
			return nil
		})
	}
	x := newLab(t, s)
	x.pingUntil(t, x.a, "198.51.100.1", "203.0.113.1", 3)
	check := func(when string, counted uint64) {
		t.Helper()
		text, _, err := x.ga.Exec("show ipsec tunnel detail ipsec:t1")
		if err != nil || !strings.Contains(text, "Transport: raw socket (ring: eth0: cannot attach the XDP program") {
			t.Errorf("%s: show does not say why the tunnel is on raw sockets (%v):\n%s", when, err, text)
		}
		if n := x.ga.Statistics().Fallbacks["ring-unavailable"]; n != counted {
			t.Errorf("%s: ring-unavailable %d, want %d", when, n, counted)
		}
		if rings := x.ga.eps.Rings(); len(rings) != 0 {
			t.Errorf("%s: a runs rings %v", when, rings)
		}
	}
	check("ring", 1)
	if !strings.Contains(x.log.String(), "the ring is not available") {
		t.Error("no warning in the log")
	}
	cfg, err := config.Parse("test.conf", strings.NewReader(strings.Replace(x.textA, "dataplane raw-transport ring", "dataplane raw-transport auto", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.ga.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, x.ga.tunnels["t1"].Up) {
		t.Fatal("a's tunnel is not up again after the reload")
	}
	check("auto", 1)
}

// TestInboundBuffersFollowTraffic: a socket's receive bursts start with a
// packet buffer or two and grow with the traffic: pings leave the
// receiving gateway's buffers small (a gateway with thousands of quiet
// endpoints would otherwise hold a megabyte for each), and a TCP transfer
// grows them to whole bursts of 64 KiB buffers, which the device needs to
// coalesce the flow's segments.
func TestInboundBuffersFollowTraffic(t *testing.T) {
	t.Parallel()
	x := newLab(t, manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel, udp: true}))
	x.pingUntil(t, x.a, "198.51.100.1", "203.0.113.1", 2)
	quiet := x.gb.Statistics().Pipelines.ReceiveBufferBytes
	x.transfer(t, 4<<20)
	busy := x.gb.Statistics().Pipelines.ReceiveBufferBytes
	t.Logf("b's receive buffers: %d bytes after pings, %d after a 4 MiB transfer", quiet, busy)
	if quiet > 64<<10 {
		t.Errorf("b's receive bursts hold %d bytes of packet buffers after a few pings; want under 64 KiB", quiet)
	}
	// Whole bursts: on a loaded machine reads may never bring the half
	// burst that moves them to 64 KiB buffers.
	if busy < offload.BurstSize*offload.BufferSize {
		t.Errorf("b's receive buffers went from %d to %d bytes over a TCP transfer; want at least a whole burst's", quiet, busy)
	}
}
