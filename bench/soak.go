package bench

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/transform"
)

// SoakOptions configure MeasureSoak.
type SoakOptions struct {
	Tunnels    int
	IKEVersion int
	IKE        IKE
	Transform  transform.Transform
	Duration   time.Duration // of the soak, after every tunnel is up
	// Lifetime is the user SAs' lifetime; 0: long enough that the
	// tunnels rekey about 150 SAs a second (N/150 s, at least 30 s, the
	// shortest the configuration takes).
	Lifetime time.Duration
	// ReloadEvery is the time between two reloads of both gateways, each
	// removing Churn tunnels and adding Churn new ones; 0: none.
	ReloadEvery time.Duration
	Churn       int
	// RestartPeer restarts the responding gateway once, half way.
	RestartPeer bool
	// RestartLosingDeletes is how many of the responder's processes (the
	// last ones) restart with the deletes they send on the way out lost:
	// to the initiator they vanish with their state, as a crashed peer
	// does, and as the responder did for 891 of 10,000 tunnels whose
	// deletes a burst lost.
	RestartLosingDeletes int
	// Samples tunnels, spread over all, carry a probe stream every
	// ProbeInterval; they are never removed.
	Samples       int
	ProbeInterval time.Duration
	// SampleEvery is the time between two readings of both gateways'
	// memory, goroutines and counters.
	SampleEvery time.Duration
	Window      int
	Peer        PeerCommand
	PeerTunnels int    // see ScaleOptions
	LogDir      string // see ScaleOptions
}

// SoakResult is what `ismbench soak` measured.
type SoakResult struct {
	Tunnels      int     `json:"tunnels"`
	IKEVersion   int     `json:"ike_version"`
	DurationS    float64 `json:"duration_s"`
	LifetimeS    float64 `json:"lifetime_s"`
	Rekeys       uint64  `json:"rekeys"` // child SAs made beyond the tunnels' first, on the initiator
	RekeysPerS   float64 `json:"rekeys_per_s"`
	Reloads      int     `json:"reloads"`
	Added        int     `json:"tunnels_added"`
	Removed      int     `json:"tunnels_removed"`
	PeerRestarts int     `json:"peer_restarts"`
	// LostPings are the probes of the sampled tunnels that got no answer,
	// outside the peer's restart; LostPingsRestart those from the restart
	// until the probes came back.
	ProbesSent       int `json:"probes_sent"`
	LostPings        int `json:"lost_pings"`
	LostPingsRestart int `json:"lost_pings_restart"`
	// LostAt is when the first 100 probes lost outside the restart were
	// sent, in seconds since the soak started.
	LostAt []float64 `json:"lost_at_s,omitempty"`
	// LostByTunnel is LostPings by sampled tunnel, those that lost any.
	LostByTunnel map[string]int `json:"lost_by_tunnel,omitempty"`
	// LongestLossS is the longest time a sampled tunnel lost every probe,
	// outside the restart: a tunnel left without working SAs.
	LongestLossS float64 `json:"longest_loss_s"`
	RestartGapS  float64 `json:"restart_gap_s"`
	// The slopes are least squares over the readings after the first
	// fifth of the soak (warm-up), of the initiator's live heap (less what
	// the probes' records in the same process take) and goroutines, and
	// of the responder's live heap (its own process); a restart of the
	// peer, until every tunnel is up again, is left out (see slope).
	HeapSlopeBytesPerMin     float64 `json:"heap_slope_bytes_per_min"`
	GoroutineSlopePerMin     float64 `json:"goroutine_slope_per_min"`
	PeerHeapSlopeBytesPerMin float64 `json:"peer_heap_slope_bytes_per_min"`
	FDsStart                 int     `json:"fds_start"`
	FDsEnd                   int     `json:"fds_end"`
	RoutesWant               int     `json:"routes_want"`
	RoutesHave               int     `json:"routes_have"`
	RulesWant                int     `json:"rules_want"`
	RulesHave                int     `json:"rules_have"`
	// LeakedSAs are SAs still in either data path well past their hard
	// lifetime, or beyond three pairs on a tunnel (see leakedSAs), at the
	// end.
	LeakedSAs int `json:"leaked_sas"`
	// LeakedWhere names the tunnels with leaked SAs on each gateway
	// ("ipsec:t7: 6 SAs", "ipsec:t9: 1 old"), up to 8 a gateway process.
	LeakedWhere []string `json:"leaked_where,omitempty"`
	// TunnelsDownAtEnd are the configured tunnels not up on the initiator
	// at the end, and PeerTunnelsDownAtEnd on the responder, after a
	// packet was routed into each one down (signaled tunnels come up on
	// demand: docs/config.md) every second for a minute: 0 once every
	// tunnel is back after the peer's restart and the churn.
	TunnelsDownAtEnd     int   `json:"tunnels_down_at_end"`
	PeerTunnelsDownAtEnd int   `json:"peer_tunnels_down_at_end"`
	DownAtEnd            []int `json:"down_at_end,omitempty"` // the first 8 on the initiator
	// MalformedQuickModes are the quick mode messages either gateway
	// refused as malformed (could not decrypt or parse): 0 between two ISM
	// gateways, whatever the churn (the responder process's before a
	// restart are not counted).
	MalformedQuickModes int    `json:"malformed_quick_modes"`
	Failures            int    `json:"failures"`
	Retransmits         uint64 `json:"retransmits"`
	// Drops are the packets the initiator's data path dropped during the
	// soak, by where and reason (of the tunnels configured at the end),
	// and PeerDrops the responder's since its restart (or the start):
	// where a lost probe went.
	Drops     map[string]uint64 `json:"drops,omitempty"`
	PeerDrops map[string]uint64 `json:"peer_drops,omitempty"`
	// KernelDrops are what the gateways' namespaces' kernels dropped
	// during the soak (scaleLab.kernelDrops): a secure interface's queue
	// overflowing, a socket's buffer.
	KernelDrops map[string]uint64 `json:"kernel_drops,omitempty"`

	Series SoakSeries `json:"series"`
}

// SoakSeries are the readings over the soak, one per SampleEvery.
type SoakSeries struct {
	Seconds       []float64 `json:"t_s"`
	HeapLive      []uint64  `json:"heap_live"`
	PeerHeapLive  []uint64  `json:"peer_heap_live"`
	Goroutines    []int     `json:"goroutines"`
	RekeysPerS    []float64 `json:"rekeys_per_s"`
	TunnelsUp     []int     `json:"tunnels_up"`
	PeerRestartAt float64   `json:"peer_restart_s,omitempty"`
}

// Validate says whether the options make sense.
func (o SoakOptions) Validate() error {
	so := ScaleOptions{Tunnels: o.Tunnels, IKEVersion: o.IKEVersion, IKE: o.IKE, Window: o.Window, Peer: o.Peer, PeerTunnels: o.PeerTunnels}
	if err := so.Validate(); err != nil {
		return err
	}
	switch {
	case o.Duration <= 0:
		return fmt.Errorf("bench: soak duration %v", o.Duration)
	case o.Lifetime != 0 && o.Lifetime < 30*time.Second:
		return fmt.Errorf("bench: lifetime %v: at least 30s", o.Lifetime)
	case o.Churn < 0 || o.Churn+o.Samples > o.Tunnels:
		return fmt.Errorf("bench: churn %d with %d samples of %d tunnels", o.Churn, o.Samples, o.Tunnels)
	case o.RestartLosingDeletes < 0 || o.RestartLosingDeletes > 0 && !o.RestartPeer:
		return fmt.Errorf("bench: %d responders losing their deletes without a restart", o.RestartLosingDeletes)
	}
	return nil
}

// namespaces are the initiator's namespace and the responders'.
func (s *soak) namespaces() []string { return append([]string{s.lab.a}, s.lab.peers...) }

// plan is the number of endpoint pairs the soak's tunnels use: the first
// ones and those the reloads add.
func (o SoakOptions) plan() int {
	reloads := 0
	if o.ReloadEvery > 0 {
		reloads = int(o.Duration / o.ReloadEvery)
	}
	return o.Tunnels + reloads*o.Churn
}

// MeasureSoak brings o.Tunnels up between two ISM gateways (as
// MeasureScale does), then runs them for o.Duration with short SA
// lifetimes, the reloads and the peer's restart, probing the sampled
// tunnels, and checks at the end that nothing leaked.
func MeasureSoak(o SoakOptions) (SoakResult, error) {
	if err := o.Validate(); err != nil {
		return SoakResult{}, err
	}
	if o.Lifetime == 0 {
		o.Lifetime = max(30*time.Second, time.Duration(o.Tunnels)*time.Second/150)
	}
	o.SampleEvery = cmpOr(o.SampleEvery, 5*time.Second)
	o.ProbeInterval = cmpOr(o.ProbeInterval, 100*time.Millisecond)
	var h harness
	var r SoakResult
	err := h.run(func() { r = runSoak(&h, o) })
	return r, err
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// soak is one soak run's state.
type soak struct {
	o       SoakOptions
	h       *harness
	lab     *scaleLab
	sc      scaleConf
	plan    int   // endpoint pairs in the address plan
	ids     []int // configured tunnels, in order of age
	samples []int
	a       *scaleGateway
	peer    *peerGroup
}

func runSoak(h *harness, o SoakOptions) SoakResult {
	s := &soak{o: o, h: h, plan: o.plan()}
	s.samples = sampleTunnels(o.Tunnels, o.Samples)
	s.lab = newScaleLab(h, s.plan, o.PeerTunnels, s.samples)
	// A negotiation cut by the peer's restart (its messages reached the
	// old process) fails after 6 s instead of the built-in 82.5 s, and
	// the tunnel's next packet starts it anew with the new process.
	s.sc = scaleConf{ikeVersion: o.IKEVersion, ike: o.IKE, transform: o.Transform, psk: newPSK(), lifetime: o.Lifetime,
		retransmit: soakRetransmit}
	for i := range o.Tunnels {
		s.ids = append(s.ids, i)
	}
	s.peer = startPeers(h, o.Peer.withLogDir(o.LogDir), s.peerConfigs())
	s.a = startScaleGateway(h, s.sc.initiatorConfig(s.lab.a, s.plan, s.ids), o.LogDir)
	s.lab.acquireAll(h, s.a, s.peer, o.Tunnels, o.Window, time.Now().Add(60*time.Second+time.Duration(o.Tunnels)*20*time.Millisecond))

	r := SoakResult{Tunnels: o.Tunnels, IKEVersion: o.IKEVersion, LifetimeS: o.Lifetime.Seconds()}
	var probes []*prober
	for _, i := range s.samples {
		startEcho(h, s.lab.peerNS(i), sampleHost(i).String(), 1)
		probes = append(probes, startProber(h, s.lab.a, innerLocalHost.String(), sampleHost(i).String(), o.ProbeInterval))
	}
	for _, p := range probes {
		p.waitFrom(h, "through a sampled tunnel", 1, time.Time{}, 30*time.Second)
	}
	qm0 := s.a.ikeCounters().QuickModesCompleted
	ups0 := s.a.stats(false).Up
	drops0, kernel0 := s.a.stats(true).Drops, s.lab.kernelDrops(s.namespaces()...)
	start := time.Now()
	r.FDsStart = s.a.stats(false).FDs
	nextReload, restartAt := start.Add(o.ReloadEvery), start.Add(o.Duration/2)
	var restartDone, restartEnd time.Time
	lastQM, lastAt := qm0, start
	tick := time.NewTicker(o.SampleEvery)
	defer tick.Stop()
	for now := start; now.Sub(start) < o.Duration; now = <-tick.C {
		if o.ReloadEvery > 0 && !now.Before(nextReload) {
			s.reload()
			r.Reloads++
			r.Added += o.Churn
			r.Removed += o.Churn
			nextReload = nextReload.Add(o.ReloadEvery)
		}
		if o.RestartPeer && r.PeerRestarts == 0 && !now.Before(restartAt) {
			restartAt = time.Now()
			s.restartPeer()
			restartDone = time.Now()
			r.PeerRestarts++
			r.Series.PeerRestartAt = now.Sub(start).Seconds() // the reading below is after it
		}
		s.acquireDown()
		as := s.a.stats(true)
		qm := s.a.ikeCounters().QuickModesCompleted
		r.Series.Seconds = append(r.Series.Seconds, now.Sub(start).Seconds())
		for _, p := range probes {
			as.HeapLive -= p.footprint() // the harness's, not the gateway's
		}
		r.Series.HeapLive = append(r.Series.HeapLive, as.HeapLive)
		r.Series.Goroutines = append(r.Series.Goroutines, as.Goroutines)
		r.Series.TunnelsUp = append(r.Series.TunnelsUp, as.UpNow)
		r.Series.RekeysPerS = append(r.Series.RekeysPerS, float64(qm-lastQM)/time.Since(lastAt).Seconds())
		r.Series.PeerHeapLive = append(r.Series.PeerHeapLive, s.peer.ask(h, "full").HeapLive)
		lastQM, lastAt = qm, time.Now()
	}
	end := time.Now()
	r.DurationS = end.Sub(start).Seconds()
	for _, p := range probes {
		p.halt()
	}
	time.Sleep(2 * time.Second) // the last answers arrive
	if r.PeerRestarts > 0 {
		// The restart lasts until every sampled tunnel answered a probe
		// sent once the new responder ran: the old one answers while it
		// stops (20,000 deletes take it seconds at 10,000 tunnels).
		restartEnd = restartDone
		for _, p := range probes {
			if at, ok := p.firstFrom(1, restartDone); ok && at.After(restartEnd) {
				restartEnd = at
			}
		}
		r.RestartGapS = restartEnd.Sub(restartAt).Seconds()
	}
	for k, p := range probes {
		sent, lost, lostIn, longest := p.lostOutside(restartAt, restartEnd, func(at time.Time) {
			if len(r.LostAt) < 100 {
				r.LostAt = append(r.LostAt, at.Sub(start).Seconds())
			}
		})
		r.ProbesSent += sent
		r.LostPings += lost
		if lost > 0 {
			if r.LostByTunnel == nil {
				r.LostByTunnel = map[string]int{}
			}
			r.LostByTunnel[fmt.Sprintf("ipsec:t%d", s.samples[k])] = lost
		}
		r.LostPingsRestart += lostIn
		r.LongestLossS = max(r.LongestLossS, float64(longest)*o.ProbeInterval.Seconds())
	}
	// Every tunnel configured now is up again; then nothing may be left.
	s.waitAllUp(&r, 60*time.Second)
	ac := s.a.ikeCounters()
	setups := s.a.stats(false).Up - ups0
	r.Rekeys = ac.QuickModesCompleted - qm0 - uint64(max(0, setups))
	r.RekeysPerS = float64(r.Rekeys) / r.DurationS
	s.checkEnd(&r, drops0, kernel0)
	gapFrom, gapTo := math.Inf(1), math.Inf(1)
	if r.PeerRestarts > 0 {
		gapFrom = r.Series.PeerRestartAt
		for i, t := range r.Series.Seconds {
			if t > gapFrom && r.Series.TunnelsUp[i] >= o.Tunnels {
				gapTo = t
				break
			}
		}
	}
	r.HeapSlopeBytesPerMin = slope(r.Series.Seconds, r.Series.HeapLive, gapFrom, gapTo) * 60
	r.GoroutineSlopePerMin = slope(r.Series.Seconds, r.Series.Goroutines, gapFrom, gapTo) * 60
	// The responder's processes before and after the restart: each its
	// own intercept.
	r.PeerHeapSlopeBytesPerMin = slope(r.Series.Seconds, r.Series.PeerHeapLive, gapFrom, gapTo) * 60
	s.peer.stop(h)
	return r
}

// soakRetransmit is the soak's "ipsec ike retransmit": resends after 1 and 1.8 s,
// failure 3.2 s later.
const soakRetransmit = "count 2 timeout 1000 base 1.8"

// peerConfigs are the responders' configurations with the tunnels now.
func (s *soak) peerConfigs() []string {
	return s.sc.responderConfigs(s.lab, s.ids, s.samples)
}

// reload removes the oldest Churn tunnels that are not sampled and adds
// as many new ones, on the responder first (so that it takes them), then
// on the initiator, which brings the new ones up.
func (s *soak) reload() {
	removed := 0
	s.ids = slices.DeleteFunc(s.ids, func(i int) bool {
		if removed < s.o.Churn && !slices.Contains(s.samples, i) {
			removed++
			return true
		}
		return false
	})
	next := slices.Max(s.ids) + 1
	for k := range s.o.Churn {
		s.ids = append(s.ids, next+k)
	}
	s.peer.reload(s.h, s.peerConfigs())
	cfg, err := config.Parse("initiator.conf", strings.NewReader(s.sc.initiatorConfig(s.lab.a, s.plan, s.ids)))
	if err != nil {
		s.h.Fatalf("initiator config: %v", err)
	}
	if err := s.a.g.Reload(cfg); err != nil {
		s.h.Fatalf("initiator reload: %v", err)
	}
}

// restartPeer stops the responding gateway (it deletes its SAs on the way
// out) and starts it again with the same configuration. The deletes of
// the last RestartLosingDeletes processes go nowhere: a blackhole route
// to the initiator in their namespaces while they stop.
func (s *soak) restartPeer() {
	lose := s.lab.peers[len(s.lab.peers)-min(s.o.RestartLosingDeletes, len(s.lab.peers)):]
	hub := netip.PrefixFrom(initiatorAddr, 128).String()
	for _, ns := range lose {
		s.lab.l.MustRun(ns, "ip", "-6", "route", "add", "blackhole", hub)
	}
	s.peer.stop(s.h)
	for _, ns := range lose {
		s.lab.l.MustRun(ns, "ip", "-6", "route", "del", "blackhole", hub)
	}
	s.peer.start(s.h, s.peerConfigs())
}
