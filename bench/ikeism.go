package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/ismgw/ism/ism"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/netns"
)

// ismSetups sets up o.Tunnels tunnels from an in-process gateway to charon
// over pairs endpoint pairs: the gateway is built with no tunnel, given
// them by a reload, and each tunnel started by a packet routed into it, at
// most o.Window in flight. It measures the gateway's memory before, with
// the tunnels configured, and with them established.
func ismSetups(h *harness, o IKEOptions, pairs int, esp string) setupRun {
	psk := newPSK()
	prog := newProgress(pairs, o.Tunnels)
	ns, resp := ikeLab(h, o, pairs, psk, esp, prog)
	g := startGatewayWith(h, fmt.Sprintf("virtual-router v netns %s\n", ns), ism.Options{Logger: slog.New(&setupLog{p: prog})})
	var run setupRun
	m0 := readMemory()
	cfg := ismTunnels(h, ns, o, pairs, psk)
	if err := g.Reload(cfg); err != nil {
		h.Fatalf("reload with %d tunnels: %v", o.Tunnels, err)
	}
	cfg = nil
	m1 := readMemory()
	var conn *net.UDPConn
	if err := netns.Do(ns, func() (err error) {
		conn, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(innerLocalHost, 0)))
		return err
	}); err != nil {
		h.Fatalf("trigger socket: %v", err)
	}
	defer conn.Close()
	dst := func(i int) netip.AddrPort { return netip.AddrPortFrom(innerRemote(i).Addr().Next(), 9) }
	next, ticks := 0, 0
	cpu0, resp0 := selfCPU(), charonCPU(h, resp)
	start := time.Now()
	run.phase1, run.all = prog.wait(h, start, start.Add(o.Timeout), o.Window, func(limit int) {
		for ; next < limit; next++ {
			// A write can fail while the TUN queue is full; the tick
			// tries again.
			_, _ = conn.WriteToUDPAddrPort([]byte{0}, dst(next))
		}
	}, func() {
		// Resend to the started tunnels still down every other second: a
		// first packet may have been dropped (TUN queue) or the
		// negotiation failed; a tunnel already negotiating ignores it.
		if ticks++; ticks%2 == 0 {
			for _, i := range prog.down(next) {
				_, _ = conn.WriteToUDPAddrPort([]byte{0}, dst(i))
			}
		}
	}, func() string {
		st := g.Statistics()
		out := fmt.Sprintf("gateway: %d of %d tunnels up, IKE %+v", st.TunnelsUp, st.Tunnels, st.IKE)
		down := prog.down(next)
		for _, i := range down[:min(3, len(down))] {
			s, _, _ := g.Exec(fmt.Sprintf("show ipsec tunnel detail t%d", i))
			out += "\n" + s
		}
		return out
	})
	run.cpu, run.respCPU = selfCPU()-cpu0, charonCPU(h, resp)-resp0
	st := g.Statistics()
	if st.TunnelsUp != o.Tunnels {
		h.Fatalf("%d tunnels logged up, but the gateway has %d of %d up", o.Tunnels, st.TunnelsUp, st.Tunnels)
	}
	if st.IKE != nil {
		run.retrans = st.IKE.Retransmits
	}
	run.t50, run.t90 = prog.quantile(start, 0.5), prog.quantile(start, 0.9)
	prog.mu.Lock()
	run.failures = prog.failed
	prog.mu.Unlock()
	conn.Close()
	time.Sleep(500 * time.Millisecond) // the last exchanges' goroutines end
	m2 := readMemory()
	if o.HeapProfile != nil && pairs == o.Tunnels {
		if err := pprof.Lookup("heap").WriteTo(o.HeapProfile, 0); err != nil {
			h.Fatalf("heap profile: %v", err)
		}
	}
	run.configured, _ = m0.perTunnel(m1, o.Tunnels)
	run.bytes, run.live = m0.perTunnel(m2, o.Tunnels)
	return run
}

// ismTunnels builds the gateway's configuration with every tunnel of a
// run, tunnel i named ti.
func ismTunnels(h *harness, ns string, o IKEOptions, pairs int, psk string) *config.Config {
	tunnels := make([]signaledTunnel, o.Tunnels)
	for i := range tunnels {
		src, dst := endpoints(i, pairs)
		tunnels[i] = signaledTunnel{Name: "t" + strconv.Itoa(i), Source: src, Destination: dst, Local: innerLocal, Remote: innerRemote(i)}
	}
	cfg, err := config.Parse("bench.conf", strings.NewReader(signaledConfig(ns, o.IKE, psk, o.Transform, tunnels)))
	if err != nil {
		h.Fatalf("bench config: %v", err)
	}
	return cfg
}

// setupLog is the gateway's logger during a setup run: it counts the
// records that mark progress (the gateway's "tunnel up", IKE's "phase 1
// established", and the gateway's "IKE: negotiation failed", once per
// failed negotiation of a tunnel) with the time each was logged, and drops
// everything.
type setupLog struct{ p *progress }

func (s *setupLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (s *setupLog) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case "phase 1 established", "IKE SA established": // IKEv1's, IKEv2's
		s.p.addPhase1(r.Time)
	case "tunnel up":
		i := -1
		r.Attrs(func(a slog.Attr) bool {
			if a.Key != "tunnel" {
				return true
			}
			if n, err := strconv.Atoi(strings.TrimPrefix(a.Value.String(), "ipsec:t")); err == nil {
				i = n
			}
			return false
		})
		s.p.addUp(i, r.Time)
	case "IKE: negotiation failed":
		s.p.addFailed()
	}
	return nil
}

func (s *setupLog) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *setupLog) WithGroup(string) slog.Handler      { return s }
