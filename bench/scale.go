package bench

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/netns"
	"github.com/ismgw/ism/transform"
)

// ScaleOptions configure MeasureScale.
type ScaleOptions struct {
	Tunnels    int // 1 to MaxIKETunnels
	IKEVersion int // 1 or 2
	IKE        IKE
	Transform  transform.Transform
	// Window is how many tunnels the initiator may have started and not
	// yet up; 0 starts them all at once.
	Window int
	// Samples is how many tunnels, spread over all, are pinged once up.
	Samples int
	// Baseline also measures 1,000 tunnels first, in the same run, when
	// Tunnels is more (setups_per_s_at_1000).
	Baseline bool
	// Timeout bounds each run; 0 means 60 seconds plus 20 ms a tunnel.
	Timeout time.Duration
	// Peer runs the responding gateway in processes of its own, each
	// with PeerTunnels tunnels (0: DefaultPeerTunnels) in a namespace of
	// its own.
	Peer        PeerCommand
	PeerTunnels int
	// LogDir, if set, receives each gateway's whole log (debug level),
	// a file per gateway: what to read when tunnels do not come up.
	LogDir string
	// HeapProfile, if set, receives the initiator's heap profile with its
	// tunnels established.
	HeapProfile io.Writer
}

// Validate says whether the options make sense.
func (o ScaleOptions) Validate() error {
	switch {
	case o.Tunnels < 1 || o.Tunnels > MaxIKETunnels:
		return fmt.Errorf("bench: %d tunnels: want 1 to %d", o.Tunnels, MaxIKETunnels)
	case o.IKEVersion != 1 && o.IKEVersion != 2:
		return fmt.Errorf("bench: IKE version %d: want 1 or 2", o.IKEVersion)
	case o.Window < 0:
		return fmt.Errorf("bench: window %d: want 0 or more", o.Window)
	case o.PeerTunnels < 0:
		return fmt.Errorf("bench: %d tunnels per responding process: want 0 or more", o.PeerTunnels)
	case o.Peer.Path == "":
		return fmt.Errorf("bench: no command for the peer gateway")
	}
	return o.IKE.Validate()
}

// ScaleResult is one row of `ismbench scale`: N tunnels between two ISM
// gateways, the initiator (a hub with one address, in this process) and
// the responder (one address per tunnel, so one IKE SA per tunnel, in
// processes of its own, peerTunnels tunnels each). The initiator's configuration is loaded (a reload
// from none), then each tunnel is brought up by a packet routed into it
// (acquire), at most Window in flight. A setup is a tunnel from nothing to
// its SAs installed on both sides: phase 1 (or IKE_SA_INIT and IKE_AUTH)
// and the child SA.
type ScaleResult struct {
	Tunnels    int    `json:"tunnels"`
	IKEVersion int    `json:"ike_version"`
	Window     int    `json:"window"`
	Proposal   string `json:"proposal"`
	ESP        string `json:"esp"`

	// SetupsPerS is tunnels over the time from the first packet to the
	// last tunnel up on both sides; SetupsSeries the tunnels that came up
	// on the initiator in each second of it, UpSeries how many were up at
	// the end of each second.
	SetupsPerS   float64 `json:"setups_per_s"`
	SetupsSeries []int   `json:"setups_per_s_series"`
	UpSeries     []int   `json:"tunnels_up_series"`
	T50Seconds   float64 `json:"t50_s"`
	T90Seconds   float64 `json:"t90_s"`
	T100Seconds  float64 `json:"t100_s"`
	// LoadSeconds is how long the initiator took to load the
	// configuration of the N tunnels (a reload from none).
	LoadSeconds float64 `json:"load_s"`

	// LiveBytesPerTunnel is the initiator's live heap per established
	// tunnel (after a collection: from one configured tunnel to N more
	// up, over N; its IKE SA, both SAs, routes' state, the tunnel: what
	// the VR's data path and the endpoint hold whatever the number of
	// tunnels is left out, and so are the packet buffers the data path's
	// pipelines made under the load, PacketBufferBytes); BytesPerTunnel
	// its heap spans and stacks in use, RSSBytesPerTunnel its resident
	// set; ConfiguredLiveBytesPerTunnel the live heap per configured idle
	// tunnel, before any negotiation.
	LiveBytesPerTunnel           float64 `json:"live_bytes_per_tunnel"`
	BytesPerTunnel               float64 `json:"bytes_per_tunnel"`
	RSSBytesPerTunnel            float64 `json:"rss_bytes_per_tunnel"`
	ConfiguredLiveBytesPerTunnel float64 `json:"configured_live_bytes_per_tunnel"`
	PacketBufferBytes            int64   `json:"packet_buffer_bytes"`
	// PeerLiveBytesPerTunnel and PeerRSSBytesPerTunnel are the
	// responder's live heap and resident set over N, everything included
	// (N endpoint addresses, two sockets each).
	PeerLiveBytesPerTunnel float64 `json:"peer_live_bytes_per_tunnel"`
	PeerRSSBytesPerTunnel  float64 `json:"peer_rss_bytes_per_tunnel"`

	// CPUSecondsPerSetup is the initiator's process CPU time (the harness
	// included) over N; PeerCPUSecondsPerSetup the responder's.
	CPUSecondsPerSetup     float64 `json:"cpu_s_per_setup"`
	PeerCPUSecondsPerSetup float64 `json:"peer_cpu_s_per_setup"`

	// ShowOneSeconds is how long `show ipsec tunnel detail t0` took on
	// the initiator with every tunnel up.
	ShowOneSeconds float64 `json:"show_one_s"`

	Retransmits uint64 `json:"retransmits"` // both sides
	Failures    int    `json:"failures"`    // failed negotiations, both sides
	PingsSent   int    `json:"pings_sent"`
	PingsLost   int    `json:"pings_lost"`

	// SetupsPerSAt1000 is SetupsPerS of a run of 1,000 tunnels in the same
	// invocation (with Baseline), and Vs1000 the ratio.
	SetupsPerSAt1000 float64 `json:"setups_per_s_at_1000,omitempty"`
	Vs1000           float64 `json:"vs_1000,omitempty"`
}

// MeasureScale runs the scale benchmark (first at 1,000 tunnels with
// Baseline) and returns its rows.
func MeasureScale(o ScaleOptions) ([]ScaleResult, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	sizes := []int{o.Tunnels}
	if o.Baseline && o.Tunnels > 1000 {
		sizes = []int{1000, o.Tunnels}
	}
	var rows []ScaleResult
	for _, n := range sizes {
		oo := o
		oo.Tunnels = n
		if n != o.Tunnels {
			oo.HeapProfile = nil
		}
		var h harness
		var r ScaleResult
		if err := h.run(func() { r = runScale(&h, oo) }); err != nil {
			return rows, fmt.Errorf("bench: scale, %d tunnels: %w", n, err)
		}
		if len(rows) > 0 && rows[0].Tunnels == 1000 {
			r.SetupsPerSAt1000 = rows[0].SetupsPerS
			r.Vs1000 = r.SetupsPerS / rows[0].SetupsPerS
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func runScale(h *harness, o ScaleOptions) ScaleResult {
	n := o.Tunnels
	if o.Timeout == 0 {
		o.Timeout = 60*time.Second + time.Duration(n)*20*time.Millisecond
	}
	esp, _ := swanESP(o.Transform)
	r := ScaleResult{Tunnels: n, IKEVersion: o.IKEVersion, Window: o.Window, Proposal: o.IKE.swan(), ESP: esp}
	samples := sampleTunnels(n, o.Samples)
	lab := newScaleLab(h, n, o.PeerTunnels, samples)
	sc := scaleConf{ikeVersion: o.IKEVersion, ike: o.IKE, transform: o.Transform, psk: newPSK()}
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}
	peer := startPeers(h, o.Peer.withLogDir(o.LogDir), sc.responderConfigs(lab, ids, samples))
	// The baseline has one tunnel that never comes up (index n), so that
	// what the VR's data path and the endpoint hold whatever the number of
	// tunnels (TUN device, sockets, receive buffers) is in it.
	a := startScaleGateway(h, sc.initiatorConfig(lab.a, n, []int{n}), o.LogDir)
	a.log.reserve(n + 1) // the harness's, not the gateway's
	m0, buf0 := a.memory()
	rss0 := selfRSS()
	cfg, err := config.Parse("initiator.conf", strings.NewReader(sc.initiatorConfig(lab.a, n, append(ids, n))))
	if err != nil {
		h.Fatalf("initiator config: %v", err)
	}
	loadStart := time.Now()
	if err := a.g.Reload(cfg); err != nil {
		h.Fatalf("reload with %d tunnels: %v", n, err)
	}
	r.LoadSeconds = time.Since(loadStart).Seconds()
	cfg = nil
	m1, buf1 := a.memory()
	m1.live -= uint64(max(0, buf1-buf0))

	cpu0, peerCPU0 := selfCPU(), peer.cpu()
	start := time.Now()
	lab.acquireAll(h, a, peer, n, o.Window, start.Add(o.Timeout))
	end := time.Now()
	r.CPUSecondsPerSetup = (selfCPU() - cpu0).Seconds() / float64(n)
	r.PeerCPUSecondsPerSetup = (peer.cpu() - peerCPU0).Seconds() / float64(n)
	r.SetupsPerS = float64(n) / end.Sub(start).Seconds()
	ups := a.log.times()
	slices.SortFunc(ups, time.Time.Compare)
	r.T50Seconds, r.T90Seconds, r.T100Seconds = quantileSince(ups, start, 0.5), quantileSince(ups, start, 0.9), quantileSince(ups, start, 1)
	r.SetupsSeries, r.UpSeries = perSecond(ups, start)

	showStart := time.Now()
	if _, _, err := a.g.Exec("show ipsec tunnel detail t0"); err != nil {
		h.Fatalf("show: %v", err)
	}
	r.ShowOneSeconds = time.Since(showStart).Seconds()
	r.PingsSent, r.PingsLost = lab.pingSamples(samples, 3)
	r.PingsLost = r.PingsSent - r.PingsLost
	time.Sleep(500 * time.Millisecond) // the last exchanges' goroutines end
	as, ps := a.stats(true), peer.ask(h, "full")
	if as.UpNow != n || ps.UpNow != n { // the initiator's sentinel is down
		h.Fatalf("after the run %d and %d of %d tunnels up; initiator %+v; responder %+v", as.UpNow, ps.UpNow, n, as, ps)
	}
	if o.HeapProfile != nil {
		writeHeapProfile(h, o.HeapProfile)
	}
	_, r.ConfiguredLiveBytesPerTunnel = m0.perTunnel(m1, n)
	r.PacketBufferBytes = as.BufferBytes - buf0
	r.BytesPerTunnel = (float64(as.HeapInUse) - float64(m0.inUse) - float64(r.PacketBufferBytes)) / float64(n)
	r.LiveBytesPerTunnel = (float64(as.HeapLive) - float64(m0.live) - float64(r.PacketBufferBytes)) / float64(n)
	r.RSSBytesPerTunnel = (float64(as.RSS) - float64(rss0)) / float64(n)
	r.PeerLiveBytesPerTunnel, r.PeerRSSBytesPerTunnel = float64(ps.HeapLive)/float64(n), float64(ps.RSS)/float64(n)
	r.Retransmits = as.Retransmits + ps.Retransmits
	r.Failures = as.Failures + ps.Failures
	peer.stop(h)
	return r
}

// memory reads the live heap and what of it the data path's pipelines
// hold in packet buffers, at a moment when no pipeline is making a burst:
// the data path counts a burst's buffers before it makes them, so the
// count is the same a while before the heap is read and after it (a
// gateway just started makes its first bursts meanwhile).
func (s *scaleGateway) memory() (memory, int64) {
	bufs := func() int64 { return s.g.Statistics().Pipelines.BufferBytes }
	for {
		before := bufs()
		time.Sleep(100 * time.Millisecond) // a burst counted is made by then
		if bufs() != before {
			continue
		}
		m := readMemory()
		if bufs() == before {
			return m, before
		}
	}
}

// startScaleGateway builds an in-process gateway from configuration text;
// it is closed when the run ends.
func startScaleGateway(h *harness, text, logDir string) *scaleGateway {
	cfg, err := config.Parse("bench.conf", strings.NewReader(text))
	if err != nil {
		h.Fatalf("bench config: %v", err)
	}
	g, err := newScaleGateway(cfg, logDir)
	if err != nil {
		h.Fatalf("gateway: %v", err)
	}
	h.Cleanup(g.close)
	return g
}

// scaleStall is how long a scale run may go without a tunnel coming up:
// the built-in retransmission schedule gives up after 82.5 s, and then
// the tunnel is started again.
const scaleStall = 100 * time.Second

// acquireAll sends a first packet into each tunnel of ids 0..n-1, at most
// window ahead of those up, again every other second to those still down,
// until all are up on both gateways.
func (s *scaleLab) acquireAll(h *harness, a *scaleGateway, peer *peerGroup, n, window int, deadline time.Time) {
	var conn *net.UDPConn
	if err := netns.Do(s.a, func() (err error) {
		conn, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(innerLocalHost, 0)))
		return err
	}); err != nil {
		h.Fatalf("trigger socket: %v", err)
	}
	defer conn.Close()
	send := func(i int) { _, _ = conn.WriteToUDPAddrPort([]byte{0}, netip.AddrPortFrom(sampleHost(i), 9)) }
	next := 0
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	lastUp, lastChange, lastResend := -1, time.Now(), time.Now()
	for {
		up := a.stats(false).Up
		if up == n && peer.ask(h, "stats").Up == n { // the responder installs last
			return
		}
		limit := n
		if window > 0 {
			limit = min(n, up+window)
		}
		for ; next < limit; next++ {
			send(next)
		}
		now := time.Now()
		if up != lastUp {
			lastUp, lastChange = up, now
		}
		if now.Sub(lastResend) > 2*time.Second {
			lastResend = now
			a.log.mu.Lock()
			for i := range next {
				if _, ok := a.log.upAt[i]; !ok {
					send(i)
				}
			}
			a.log.mu.Unlock()
		}
		switch {
		case now.After(deadline):
			h.Fatalf("not all up in time: %d of %d on the initiator, %+v on the responder", up, n, peer.ask(h, "stats"))
		case now.Sub(lastChange) > scaleStall && up < n:
			down := a.downTunnels()
			h.Fatalf("no progress for %v: %d of %d up on the initiator, down: %v", scaleStall, up, n, down[:min(8, len(down))])
		}
		select {
		case <-a.log.changed:
		case <-poll.C:
		}
	}
}

func writeHeapProfile(h *harness, w io.Writer) {
	if err := pprof.Lookup("heap").WriteTo(w, 0); err != nil {
		h.Fatalf("heap profile: %v", err)
	}
}

// quantileSince is how long after start a fraction q of the sorted times
// had passed.
func quantileSince(ts []time.Time, start time.Time, q float64) float64 {
	if len(ts) == 0 {
		return 0
	}
	i := min(len(ts)-1, max(0, int(math.Ceil(q*float64(len(ts))))-1))
	return ts[i].Sub(start).Seconds()
}

// perSecond buckets the sorted times by whole seconds since start: how
// many in each second, and how many by its end.
func perSecond(ts []time.Time, start time.Time) (each, total []int) {
	if len(ts) == 0 {
		return nil, nil
	}
	secs := int(ts[len(ts)-1].Sub(start)/time.Second) + 1
	each, total = make([]int, secs), make([]int, secs)
	for _, t := range ts {
		each[max(0, int(t.Sub(start)/time.Second))]++
	}
	sum := 0
	for i, c := range each {
		sum += c
		total[i] = sum
	}
	return each, total
}
