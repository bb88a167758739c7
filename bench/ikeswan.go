package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/ismgw/ism/internal/swantest/charon"
)

// initiators is how many vici connections send the initiate requests of a
// strongSwan setup run in parallel (a connection has one command at a
// time).
const initiators = 4

// swanSetups sets up o.Tunnels tunnels from a charon to the responding
// charon over pairs endpoint pairs, every one asked for at once over vici
// (initiate with a timeout of -1 returns at once), and counts the
// ike-updown and child-updown events. It measures charon's malloc heap
// with no connection loaded, and with the tunnels established.
func swanSetups(h *harness, o IKEOptions, pairs int, esp string) setupRun {
	psk := newPSK()
	prog := newProgress(pairs, o.Tunnels)
	ns, resp := ikeLab(h, o, pairs, psk, esp, prog)
	ch := startCharon(h, ns, charon.Conf{Swanctl: swanctlConf(psk)})
	ev := viciClient(h, ch)
	for event, up := range map[string]func(time.Time){"ike-updown": prog.addPhase1, "child-updown": func(at time.Time) { prog.addUp(-1, at) }} {
		if err := ev.Listen(event, func(m *charon.Message) {
			if m.Keys["up"] == "yes" {
				up(time.Now())
			} else {
				prog.addFailed()
			}
		}); err != nil {
			h.Fatalf("%v", err)
		}
	}
	m0 := charonHeap(h, ev)
	conns, targets := swanInitiators(o, pairs, esp)
	path := filepath.Join(ch.Dir, "initiators.conf")
	if err := os.WriteFile(path, []byte(swanctlConf(psk, conns...)), 0o600); err != nil {
		h.Fatalf("bench: %v", err)
	}
	if out, err := ch.Swanctl("--load-conns", "--file", path); err != nil {
		h.Fatalf("swanctl --load-conns: %v\n%s", err, out)
	}
	clients := make([]*charon.Client, initiators)
	for i := range clients {
		clients[i] = viciClient(h, ch)
	}
	// Initiate requests go out on initiators connections at once; the
	// window holds them back as wait says.
	queue := make(chan int, len(targets))
	errs := make(chan error, initiators)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(queue)
	for _, c := range clients {
		wg.Go(func() {
			for i := range queue {
				req := (&charon.Message{}).Set("child", targets[i].child).Set("ike", targets[i].ike).Set("timeout", "-1")
				if err := charon.Check(c.Call("initiate", req)); err != nil {
					errs <- fmt.Errorf("initiate %s: %w", targets[i].child, err)
					return
				}
			}
		})
	}
	var run setupRun
	next := 0
	cpu0, resp0 := charonCPU(h, ch), charonCPU(h, resp)
	start := time.Now()
	run.phase1, run.all = prog.wait(h, start, start.Add(o.Timeout), o.Window, func(limit int) {
		for ; next < limit; next++ {
			queue <- next
		}
	}, func() {
		select {
		case err := <-errs:
			h.Fatalf("%v", err)
		default:
		}
	}, func() string { return ch.LogTail(30) })
	run.cpu, run.respCPU = charonCPU(h, ch)-cpu0, charonCPU(h, resp)-resp0
	run.t50, run.t90 = prog.quantile(start, 0.5), prog.quantile(start, 0.9)
	prog.mu.Lock()
	run.failures = prog.failed
	prog.mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	run.bytes = (float64(charonHeap(h, ev)) - float64(m0)) / float64(o.Tunnels)
	return run
}

// swanTarget is what one initiate request names.
type swanTarget struct{ ike, child string }

// swanInitiators returns the initiating charon's connections: with one
// endpoint pair per tunnel, connection ci with child ci for tunnel i;
// with one pair, connection c with a child c-i per tunnel.
func swanInitiators(o IKEOptions, pairs int, esp string) ([]swanPeer, []swanTarget) {
	var conns []swanPeer
	var targets []swanTarget
	for i := range o.Tunnels {
		local, remote := endpoints(i, pairs)
		child := swanChild{LocalTS: innerLocal.String(), RemoteTS: innerRemote(i).String()}
		if pairs == 1 {
			if i == 0 {
				conns = append(conns, swanPeer{Name: "c", Local: local.String(), Remote: remote.String(), IKE: o.IKE.swan(), ESP: esp, Version: o.IKE.version()})
			}
			child.Name = "c-" + strconv.Itoa(i)
			conns[0].Children = append(conns[0].Children, child)
			targets = append(targets, swanTarget{ike: "c", child: child.Name})
			continue
		}
		child.Name = "c" + strconv.Itoa(i)
		conns = append(conns, swanPeer{Name: child.Name, Local: local.String(), Remote: remote.String(), IKE: o.IKE.swan(), ESP: esp, Version: o.IKE.version(),
			Children: []swanChild{child}})
		targets = append(targets, swanTarget{ike: child.Name, child: child.Name})
	}
	return conns, targets
}

// viciClient connects to charon; the connection closes with the run.
func viciClient(h *harness, ch *charon.Charon) *charon.Client {
	c, err := ch.Vici()
	if err != nil {
		h.Fatalf("%v", err)
	}
	h.Cleanup(func() { c.Close() })
	return c
}

// charonHeap is charon's malloc heap in use: mallinfo's used (small
// blocks) plus mmap (large ones), from vici's stats.
func charonHeap(h *harness, c *charon.Client) uint64 {
	m, err := c.Call("stats", nil)
	if err != nil {
		h.Fatalf("vici stats: %v", err)
	}
	mi := m.Sections["mallinfo"]
	if mi == nil {
		h.Fatalf("vici stats: no mallinfo (charon built without mallinfo support)")
	}
	used, err1 := strconv.ParseUint(mi.Keys["used"], 10, 64)
	mmap, err2 := strconv.ParseUint(mi.Keys["mmap"], 10, 64)
	if err1 != nil || err2 != nil {
		h.Fatalf("vici stats: mallinfo %v", mi.Keys)
	}
	return used + mmap
}

// charonCPU is the CPU time charon has used.
func charonCPU(h *harness, ch *charon.Charon) time.Duration {
	d, err := pidCPU(ch.Pid())
	if err != nil {
		h.Fatalf("charon's CPU time: %v", err)
	}
	return d
}
