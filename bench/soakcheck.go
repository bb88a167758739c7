package bench

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/netns"
)

// ikeCounters are the gateway's IKE counters (zero without IKE).
func (s *scaleGateway) ikeCounters() ike.Counters {
	if c := s.g.Statistics().IKE; c != nil {
		return *c
	}
	return ike.Counters{}
}

// leakedSAs counts the SAs in the gateway's data paths that outlived
// maxAge, and those beyond three pairs on one tunnel, and names what it
// found: "TUNNEL: N old" or "TUNNEL: N SAs", the first 8. Three pairs are
// not a leak: an old pair waits for its last packets while a rekeyed one
// takes over, and when both ends start the rekey at once (IKEv1 does not
// resolve such a collision) both new pairs stay until they expire.
func (s *scaleGateway) leakedSAs(maxAge time.Duration) (int, []string) {
	n := 0
	var where []string
	now := time.Now()
	for _, t := range s.g.Tunnels() {
		old := 0
		for _, sa := range t.SAs {
			if now.Sub(sa.Created) > maxAge {
				old++
			}
		}
		extra := max(0, len(t.SAs)-6)
		n += extra + old
		switch {
		case len(where) == 8:
		case old > 0:
			where = append(where, fmt.Sprintf("%s: %d old", t.Name, old))
		case extra > 0:
			where = append(where, fmt.Sprintf("%s: %d SAs", t.Name, len(t.SAs)))
		}
	}
	return n, where
}

// downTunnels returns the indexes of the gateway's tunnels ("ipsec:tN")
// that are not up.
func (s *scaleGateway) downTunnels() []int {
	var out []int
	for _, t := range s.g.Tunnels() {
		if t.State == "up" {
			continue
		}
		if i, err := strconv.Atoi(strings.TrimPrefix(t.Name, "ipsec:t")); err == nil {
			out = append(out, i)
		}
	}
	return out
}

// acquireDown sends a packet into every configured tunnel of the
// initiator that is down, to bring it up.
func (s *soak) acquireDown() {
	var conn *net.UDPConn
	if err := netns.Do(s.lab.a, func() (err error) {
		conn, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(innerLocalHost, 0)))
		return err
	}); err != nil {
		s.h.Fatalf("trigger socket: %v", err)
	}
	defer conn.Close()
	sent := 0
	for _, i := range s.a.downTunnels() {
		if i >= s.plan { // the initiator's sentinel
			continue
		}
		_, _ = conn.WriteToUDPAddrPort([]byte{0}, netip.AddrPortFrom(sampleHost(i), 9))
		if sent++; sent%triggerBurst == 0 {
			time.Sleep(triggerPause)
		}
	}
}

// The packets acquireDown routes into the tunnels that are down go
// triggerBurst at a time, triggerPause apart (10,000 a second): written
// all at once, one into each of thousands of tunnels after the peer's
// restart, they overflowed the initiator's secure-interface queue (500
// packets; 7,788 dropped there in a 10,000-tunnel soak, kernel_drops)
// and took the sampled tunnels' probes with them.
const (
	triggerBurst = 100
	triggerPause = 10 * time.Millisecond
)

// waitAllUp routes a packet into every configured tunnel down on the
// initiator, every second, until every one is up on both gateways, at
// most timeout, and records those still down in r.
func (s *soak) waitAllUp(r *SoakResult, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		s.acquireDown()
		down, ps := s.a.downTunnels(), s.peer.ask(s.h, "full")
		r.TunnelsDownAtEnd, r.PeerTunnelsDownAtEnd = len(down), len(s.ids)-ps.UpNow
		r.DownAtEnd = down[:min(8, len(down))]
		if r.TunnelsDownAtEnd == 0 && r.PeerTunnelsDownAtEnd == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Second)
	}
}

// Problems lists what the soak found broken at the end: tunnels not back
// up, SAs left behind, routes or rules out of step with the
// configuration, quick modes refused as malformed, file descriptors left
// over. The figures that depend on the machine's load (probes lost, the
// heap's slope) are measured, not judged.
func (r SoakResult) Problems() []string {
	var out []string
	if r.TunnelsDownAtEnd+r.PeerTunnelsDownAtEnd > 0 {
		out = append(out, fmt.Sprintf("tunnels down at the end: %d on the initiator (%v), %d on the responder",
			r.TunnelsDownAtEnd, r.DownAtEnd, r.PeerTunnelsDownAtEnd))
	}
	if r.LeakedSAs != 0 {
		out = append(out, fmt.Sprintf("%d SAs left behind: %v", r.LeakedSAs, r.LeakedWhere))
	}
	if r.RoutesHave != r.RoutesWant || r.RulesHave != r.RulesWant {
		out = append(out, fmt.Sprintf("%d routes and %d rules, want %d and %d", r.RoutesHave, r.RulesHave, r.RoutesWant, r.RulesWant))
	}
	if r.MalformedQuickModes != 0 {
		out = append(out, fmt.Sprintf("%d quick mode messages refused as malformed between two ISM gateways", r.MalformedQuickModes))
	}
	if r.FDsEnd > r.FDsStart {
		out = append(out, fmt.Sprintf("%d file descriptors at the start, %d at the end", r.FDsStart, r.FDsEnd))
	}
	return out
}

// checkEnd reads what must be back to the configuration at the end: the
// routes and rules, the SAs, the file descriptors.
func (s *soak) checkEnd(r *SoakResult, drops0, kernel0 map[string]uint64) {
	maxAge := s.o.Lifetime + 15*time.Second
	ps := s.peer.ask(s.h, "full "+strconv.Itoa(int(maxAge.Seconds())))
	as := s.a.stats(true)
	r.Drops = since(as.Drops, drops0)
	r.PeerDrops = ps.Drops
	r.KernelDrops = since(s.lab.kernelDrops(s.namespaces()...), kernel0)
	n, where := s.a.leakedSAs(maxAge)
	r.LeakedSAs = n + ps.LeakedSAs
	r.LeakedWhere = append(where, ps.LeakedWhere...)
	r.FDsEnd = as.FDs
	r.Failures = as.Failures + ps.Failures
	r.MalformedQuickModes = as.Malformed + ps.Malformed
	r.Retransmits = as.Retransmits + ps.Retransmits
	r.RoutesWant, r.RulesWant = len(s.ids), len(s.samples)
	routes := s.lab.l.MustRun(s.lab.a, "ip", "-6", "route", "show")
	for _, line := range strings.Split(routes, "\n") {
		if p, err := netip.ParsePrefix(strings.Fields(line + " x")[0]); err == nil && innerRemoteAll.Contains(p.Addr()) {
			r.RoutesHave++
		}
	}
	for _, ns := range s.lab.peers {
		rules := s.lab.l.MustRun(ns, "ip", "-6", "rule", "show")
		for _, line := range strings.Split(rules, "\n") {
			if strings.Contains(line, "from 2001:db8:200:") {
				r.RulesHave++
			}
		}
	}
}

// lostOutside counts, from the first probe answered, the probes sent,
// those lost outside [from, to] (each one's sending time goes to lostAt),
// those lost inside it, and the longest run of probes lost in a row
// outside it.
func (p *prober) lostOutside(from, to time.Time, lostAt func(time.Time)) (sent, lost, lostIn, longest int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	run := 0
	for seq := p.firstAnsweredLocked(); seq < len(p.sent); seq++ {
		sent++
		if !p.answers[seq].at.IsZero() {
			run = 0
			continue
		}
		if at := p.sent[seq]; !at.Before(from) && !at.After(to) {
			lostIn++
		} else {
			lost++
			lostAt(at)
			run++
			longest = max(longest, run)
		}
	}
	return sent, lost, lostIn, longest
}

// slope is the least-squares slope of ys over xs, after the warm-up (the
// first fifth of the readings) and leaving out those in [gapFrom, gapTo):
// the peer's restart until every tunnel was up again. The readings before
// and after the gap share the slope, each with its own intercept, so that
// a step across the restart (tables grown while old and new SAs were
// there together) is not taken for a slope; with no gap (+Inf) it is the
// plain least-squares slope.
func slope[T int | uint64](xs []float64, ys []T, gapFrom, gapTo float64) float64 {
	type sums struct{ n, x, y, xx, xy float64 }
	var seg [2]sums
	for i := len(xs) / 5; i < len(xs); i++ {
		x, y := xs[i], float64(ys[i])
		if x >= gapFrom && x < gapTo {
			continue
		}
		g := &seg[0]
		if x >= gapTo {
			g = &seg[1]
		}
		g.n, g.x, g.y, g.xx, g.xy = g.n+1, g.x+x, g.y+y, g.xx+x*x, g.xy+x*y
	}
	if seg[0].n+seg[1].n < 3 {
		return 0
	}
	var num, den float64
	for _, g := range seg {
		if g.n > 0 {
			num += g.xy - g.x*g.y/g.n
			den += g.xx - g.x*g.x/g.n
		}
	}
	if den == 0 {
		return 0
	}
	return num / den
}
