package bench

import (
	"slices"
	"sync"
	"time"
)

// peerGroup is the responding gateway of a scale or soak run, split over
// one ServeScalePeer process per responder of the lab (see scaleLab): it
// asks them all and adds their answers up. Not safe for concurrent use.
type peerGroup struct {
	pc    PeerCommand
	procs []*peerProcess
}

// startPeers starts one process per configuration, all at once, and waits
// until every one's gateway is up.
func startPeers(h *harness, pc PeerCommand, texts []string) *peerGroup {
	g := &peerGroup{pc: pc, procs: make([]*peerProcess, len(texts))}
	g.each(func(k int) { g.procs[k] = startPeer(h, pc, texts[k]) })
	return g
}

// each runs f for every process index at once and waits for them; a
// fatal error (the harness's panic) in one is raised again here.
func (g *peerGroup) each(f func(k int)) {
	var wg sync.WaitGroup
	failed := make([]any, len(g.procs))
	for k := range g.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { failed[k] = recover() }()
			f(k)
		}()
	}
	wg.Wait()
	for _, r := range failed {
		if r != nil {
			panic(r)
		}
	}
}

// ask sends cmd to every process and returns the sum of the answers.
func (g *peerGroup) ask(h *harness, cmd string) gwStats {
	sts := make([]gwStats, len(g.procs))
	g.each(func(k int) { sts[k] = g.procs[k].ask(h, cmd) })
	return sumStats(sts)
}

// reload gives each process its new configuration and returns the sum.
func (g *peerGroup) reload(h *harness, texts []string) gwStats {
	sts := make([]gwStats, len(g.procs))
	g.each(func(k int) { sts[k] = g.procs[k].reload(h, texts[k]) })
	return sumStats(sts)
}

// stop ends every process (see peerProcess.stop).
func (g *peerGroup) stop(h *harness) { g.each(func(k int) { g.procs[k].stop(h) }) }

// start starts every process again, stopped, with texts.
func (g *peerGroup) start(h *harness, texts []string) {
	g.each(func(k int) { g.procs[k] = startPeer(h, g.pc, texts[k]) })
}

// cpu is the processes' CPU time so far, together.
func (g *peerGroup) cpu() time.Duration {
	var d time.Duration
	for _, p := range g.procs {
		d += p.cpu()
	}
	return d
}

// withLogDir is pc with its gateways logging into dir, if set.
func (pc PeerCommand) withLogDir(dir string) PeerCommand {
	if dir != "" {
		pc.Env = append(slices.Clip(pc.Env), logDirEnv+"="+dir)
	}
	return pc
}

// sumStats adds gateways' readings up, as if of one gateway (LastDown is
// the last non-empty one).
func sumStats(sts []gwStats) gwStats {
	var t gwStats
	for _, s := range sts {
		t.Up += s.Up
		t.UpNow += s.UpNow
		t.Tunnels += s.Tunnels
		t.SAs += s.SAs
		t.Failures += s.Failures
		t.Rekeys += s.Rekeys
		t.Retransmits += s.Retransmits
		t.Downs += s.Downs
		t.HeapLive += s.HeapLive
		t.HeapInUse += s.HeapInUse
		t.RSS += s.RSS
		t.Goroutines += s.Goroutines
		t.FDs += s.FDs
		t.LeakedSAs += s.LeakedSAs
		t.LeakedWhere = append(t.LeakedWhere, s.LeakedWhere...)
		t.Malformed += s.Malformed
		for k, n := range s.Drops {
			if t.Drops == nil {
				t.Drops = map[string]uint64{}
			}
			t.Drops[k] += n
		}
		if s.LastDown != "" {
			t.LastDown = s.LastDown
		}
	}
	return t
}
